"""Property-based bad-input test: schemathesis generates valid and invalid requests for every operation of
the served /openapi.json and sends them, with a real key, to a real server process, running every check
schemathesis has (``--checks all``). No input may produce a 5xx, invalid input must be refused with a 4xx,
and every response must match the document (status code, content type, headers, schema)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from tests.conftest import make_tenant
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.livesrv import fuzzed_server, server_log

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
async def seeded(app: Any, sessionmaker: Any) -> dict[str, Any]:
    """A workspace with one of everything, so generated requests also reach real rows."""
    tenant = await make_tenant(sessionmaker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=tenant.headers) as api:
        agent = await create_agent(api, version={"mode": "PROMPT", "model": "gpt-4o-mini"})
        end_user = await create_end_user(api)
        tag = (await api.post("/v1/tags", json={"name": "fuzz"})).json()
        user = (await api.post("/v1/users", json={"email": "fuzz@example.com"})).json()
        integration = (await api.post("/v1/integrations", json={"type": "api"})).json()
        # Before the thread and its messages, so that their events make deliveries (the server runs no worker).
        webhook = (await api.post("/v1/webhooks", json={"url": "https://hooks.example.com/fuzz"})).json()
        thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])
        message = None
        for i in range(5):
            message = await post_message(api, thread["id"], f"**m{i}**")
        key = (await api.post("/v1/api_keys", json={"scopes": ["read"]})).json()
        delivery = (await api.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"][0]
    # The test below is synchronous: this event loop stands still while it runs, so nothing of ours may
    # be left half-done in it (a background last_used_at write would hold SQLite's write lock).
    await app.state.last_used.drain()
    assert message is not None
    ids = {
        "agent_id": agent["id"],
        "version_id": agent["current_version"]["id"],
        "end_user_id": end_user["id"],
        "tag_id": tag["id"],
        "user_id": user["id"],
        "integration_id": integration["id"],
        "thread_id": thread["id"],
        "message_id": message["id"],
        "run_id": message["run"]["id"],
        "key_id": key["id"],
        "webhook_id": webhook["id"],
        "delivery_id": delivery["id"],
    }
    return {"headers": tenant.headers, "ids": ids}


@pytest.fixture(scope="module")
def live_base(database_url: str, engine: Any, settings: Any) -> Iterator[str]:
    with fuzzed_server(database_url, settings) as base:
        yield base


def _openapi_document() -> dict[str, Any]:
    # The document the server serves at /openapi.json; building the app opens no connection.
    from threadline.app import create_app
    from threadline.config import Settings

    document: dict[str, Any] = create_app(Settings(database_url="sqlite://", bootstrap=False)).openapi()
    return document


# Every operation the server documents, the event streams included (the fuzzed server ends them at once).
schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_refuses_bad_input_with_4xx_and_keeps_its_contract(
    case: Any, seeded: dict[str, Any], live_base: str
) -> None:
    # Most cases address real rows; the rest keep generated (unknown) ids, which must be 404s.
    if case.path_parameters and random.random() < 0.8:
        for name in case.path_parameters:
            if name in seeded["ids"]:
                case.path_parameters[name] = seeded["ids"][name]
    try:
        # The key both ways the document declares, so that schemathesis knows every credential it sends.
        key = seeded["headers"]["Authorization"].split()[1]
        headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
        case.call_and_validate(base_url=live_base, headers=headers)  # every check schemathesis has
    except Exception as exc:
        exc.add_note(f"server log:\n{server_log(live_base)[-5000:]}")
        raise
