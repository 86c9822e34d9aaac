"""Each vendor's own document, run against its mount: schemathesis generates requests from the vendor's
OpenAPI file (tests/dialects/documents/<vendor>.yaml, unchanged) and sends them to a real server process
holding seeded data (every message type, role, status and direction, tool calls and iterations). Responses
must keep the document's contract: no server error, a documented status code, the documented content type,
and a body its schema accepts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_tenant
from tests.dialects.seed import seed_everything
from tests.livesrv import fuzzed_server, server_log

SPECS = Path(__file__).with_name("documents")  # the vendors' OpenAPI files, unchanged
MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
async def seeded(app: Any, sessionmaker: Any) -> dict[str, Any]:
    tenant = await make_tenant(sessionmaker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=tenant.headers) as api:
        data = await seed_everything(api, sessionmaker)
    await app.state.last_used.drain()
    message_ids = [m["id"] for m in data.messages]
    return {
        "key": tenant.key,
        "thread_uuid": data.thread_id,
        "thread_number": data.thread_number,
        "message_ids": message_ids,
        "agent_id": data.agent["id"],
        "end_user_id": data.end_user["id"],
        "other_thread": data.other_threads[0]["id"],
    }


@pytest.fixture(scope="module")
def live_base(database_url: str, engine: Any, settings: Any) -> Iterator[str]:
    with fuzzed_server(database_url, settings) as base:
        yield base


def _spec(vendor: str) -> Any:
    return schemathesis.openapi.from_path(SPECS / f"{vendor}.yaml")


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)

altur = _spec("altur")
camelai = _spec("camelai")
aitronos = _spec("aitronos")
# Its document lists no error response, so only requests it allows are sent (the 400s are in test_aitronos.py).
aitronos.config.generation.update(modes=[GenerationMode.POSITIVE])
feather = _spec("feather")


@altur.parametrize()
@HYPOTHESIS
def test_altur_keeps_its_document(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    # Most cases address real rows; the rest keep generated ids, which must be the documented 404 or 400.
    if case.path_parameters and random.random() < 0.8:
        case.path_parameters["thread_id"] = seeded["thread_uuid"]
    if isinstance(case.body, dict) and random.random() < 0.8:
        case.body["agent_id"] = seeded["agent_id"]
        case.body["end_user_id"] = seeded["end_user_id"]
    _call_root(case, live_base, "/altur/api/v1.0", {"Authorization": f"api-key {seeded['key']}"})


@camelai.parametrize()
@HYPOTHESIS
def test_camelai_keeps_its_document(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    if random.random() < 0.8:
        case.path_parameters["thread_id"] = seeded["thread_number"]
    _call_root(case, live_base, "/camelai", {"Authorization": f"Bearer {seeded['key']}"})


@aitronos.parametrize()
@HYPOTHESIS
def test_aitronos_keeps_its_document(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    # The document lists no error response at all, so every case must be one it answers with 200: the
    # thread and the cursors are always real (errors are pinned in test_aitronos.py instead).
    case.path_parameters["thread_id"] = seeded["thread_uuid"]
    query = case.query or {}
    for cursor in ("after", "before"):
        if cursor in query:
            query[cursor] = random.choice(seeded["message_ids"])
    case.query = query
    _call_root(case, live_base, "/aitronos", {"X-API-Key": seeded["key"]})


@feather.parametrize()
@HYPOTHESIS
def test_feather_keeps_its_document(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    if random.random() < 0.8:
        case.path_parameters["threadId"] = seeded["thread_uuid"]
    query = case.query or {}
    if "cursor" in query and random.random() < 0.7:
        query["cursor"] = random.choice(seeded["message_ids"])
    if "limit" in query and random.random() < 0.7:
        query["limit"] = str(random.randint(1, 100))
    case.query = query
    _call_root(case, live_base, "/feather", {"X-API-Key": seeded["key"]})


def _call_root(case: Any, live_base: str, prefix: str, headers: dict[str, str]) -> None:
    try:
        case.call_and_validate(base_url=live_base + prefix, headers=headers, checks=CHECKS)
    except Exception as exc:
        exc.add_note(f"server log:\n{server_log(live_base)[-5000:]}")
        raise
