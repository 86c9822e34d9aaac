"""Defect 6 of issue 12, staged against a real server: a date-time that is valid RFC 3339 but whose instant
lies outside datetime's range once converted to UTC (``9999-12-31T23:59:59-00:01``,
``0001-01-01T00:00:00+14:00``) was a 500 on ``GET /v1/threads?updated_since=``. Every date-time input of the
served OpenAPI document is probed (so one added later is probed too), and so is the one date a channel
webhook reads (WhatsApp's status ``timestamp``, Unix seconds). The vendor mounts take no date input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.channels.test_twilio_inbound import quiet_agent
from tests.channels.test_whatsapp_inbound import new_wamid, signature, whatsapp_line
from tests.conftest import make_tenant
from tests.factories import create_thread
from tests.livesrv import live_server, server_log
from threadline.config import Settings

OUT_OF_RANGE = ("9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+14:00")
# The first and last instants a datetime holds, and a late time whose offset keeps it inside: all valid.
IN_RANGE = ("9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+23:59")


@pytest.fixture(scope="module")
def base(database_url: str, engine: Any, settings: Settings) -> Iterator[str]:
    assert settings.database.secret_keys is not None
    with live_server(database_url, THREADLINE_SECRET_KEYS=settings.database.secret_keys.get_secret_value()) as url:
        yield url


@pytest.fixture
async def live(base: str, sessionmaker: Any) -> AsyncIterator[httpx.AsyncClient]:
    tenant = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=10) as c:
        yield c


def _date_inputs(document: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(method, path, name) of every date-time query parameter, and where any date-time sits in a body."""
    schemas = document.get("components", {}).get("schemas", {})

    def dated(node: Any, seen: frozenset[str] = frozenset()) -> bool:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                return name not in seen and dated(schemas.get(name), seen | {name})
            return node.get("format") == "date-time" or any(dated(v, seen) for v in node.values())
        if isinstance(node, list):
            return any(dated(v, seen) for v in node)
        return False

    params, bodies = [], []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if dated(param.get("schema")):
                    assert param["in"] == "query", f"a date-time {param['in']} parameter: {method} {path}"
                    params.append((method, path, param["name"]))
            if dated(operation.get("requestBody")):
                bodies.append(f"{method.upper()} {path}")
    return params, bodies


async def test_every_date_time_parameter_refuses_an_instant_past_datetimes_range_with_422_naming_it(
    live: httpx.AsyncClient, base: str
) -> None:
    document = (await live.get("/openapi.json")).json()
    params, bodies = _date_inputs(document)
    assert ("get", "/v1/threads", "updated_since") in params
    # No request body takes a date-time today; one that does needs its own probe here.
    assert bodies == []
    for method, path, name in params:
        assert "{" not in path, f"{path}: give this probe real ids for its path"
        for value in OUT_OF_RANGE:
            r = await live.request(method, path, params={name: value})
            assert r.status_code == 422, f"{method} {path}?{name}={value}: {r.status_code} {r.text}\n{server_log(base)}"
            error = r.json()["error"]
            assert (error["type"], error["code"], error["param"]) == (
                "invalid_request_error",
                "validation_error",
                name,
            ), r.text
            assert "UTC" in error["message"], r.text
        for value in IN_RANGE:
            r = await live.request(method, path, params={name: value})
            assert r.status_code == 200, f"{method} {path}?{name}={value}: {r.status_code} {r.text}"


async def test_the_edges_of_the_range_reach_the_database_and_filter_as_instants(live: httpx.AsyncClient) -> None:
    thread = await create_thread(live)
    listed: dict[str, list[str]] = {}
    for value in IN_RANGE:
        r = await live.get("/v1/threads", params={"updated_since": value, "limit": 100})
        assert r.status_code == 200, r.text
        listed[value] = [t["id"] for t in r.json()["data"]]
    assert listed == {IN_RANGE[0]: [], IN_RANGE[1]: [thread["id"]], IN_RANGE[2]: []}


async def test_a_whatsapp_status_timestamp_past_year_9999_is_a_400_naming_it(
    live: httpx.AsyncClient, base: str
) -> None:
    line, _ = await whatsapp_line(live, agent=await quiet_agent(live))
    async with httpx.AsyncClient(base_url=base, timeout=10) as meta:  # what Meta is to the server: no API key
        for seconds, status in (("999999999999", 400), ("253402300800", 400), ("253402300799", 200)):
            document = line.notification(statuses=[{"id": new_wamid(), "status": "delivered", "timestamp": seconds}])
            body = json.dumps(document).encode()
            headers = {"content-type": "application/json", "x-hub-signature-256": signature(line.app_secret, body)}
            r = await meta.post(line.path, content=body, headers=headers)
            assert r.status_code == status, (seconds, r.text)
            if status == 400:
                assert r.json()["error"]["param"] == "entry[0].changes[0].value.statuses[0].timestamp", r.text
