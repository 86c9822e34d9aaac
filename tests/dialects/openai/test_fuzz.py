"""OpenAI's own document, run against the mount: schemathesis generates valid and invalid requests for each of the
operations served (from ``openai-openapi.json``, OpenAI's published spec, unchanged) and sends them with a real
key to a real server process holding a conversation with items and a response. No request may produce a server
error; every answer must have the documented content type; a 200 must match the document's schema; every refusal
must be OpenAI's error envelope with one of the statuses OpenAI answers. (The document lists only 200 and 429 for
these operations, so the statuses of refusals are held to OpenAI's set, not to the document.)"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error

from tests.conftest import make_tenant
from tests.dialects.openai.conftest import FLOW_ECHO
from tests.dialects.openai.spec import DOCUMENT, answer_schema, assert_valid
from tests.livesrv import fuzzed_server, server_log

MAX_EXAMPLES = 25
# Which cases get real rows: a generator of its own (hypothesis reseeds the global one for every example, which
# would make every case choose alike).
RNG = random.Random(20251207)
MAX_EXAMPLES_WITH_ITEMS = 40
OPENAI_STATUSES = {400, 401, 403, 404, 405, 409, 413, 429}


@pytest.fixture(scope="module")
async def seeded(app: Any, sessionmaker: Any) -> dict[str, Any]:
    """A workspace with one agent, a conversation with items of every kind, and a response."""
    tenant = await make_tenant(sessionmaker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=tenant.headers) as api:
        r = await api.post(
            "/v1/agents",
            json={"name": "echo", "type": "TEXT", "version": {"mode": "FLOW", "provider": "flow", "flow": FLOW_ECHO}},
        )
        assert r.status_code == 201, r.text
        r = await api.post(
            "/openai/v1/conversations",
            json={
                "metadata": {"topic": "fuzz"},
                "items": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "ok"},
                ],
            },
        )
        assert r.status_code == 200, r.text
        conversation = r.json()["id"]
        items = (await api.get(f"/openai/v1/conversations/{conversation}/items")).json()["data"]
        # The app in process runs no worker: the response's run stays queued, which is a response all the same.
        r = await api.post(
            "/openai/v1/responses", json={"conversation": conversation, "input": "Hello?", "background": True}
        )
        assert r.status_code == 200, r.text
        response = r.json()["id"]
    await app.state.last_used.drain()
    return {
        "key": tenant.key,
        "conversation_id": conversation,
        "item_ids": [i["id"] for i in items],
        "response_id": response,
    }


@pytest.fixture(scope="module")
def live_base(database_url: str, engine: Any, settings: Any) -> Iterator[str]:
    with fuzzed_server(database_url, settings) as base:
        yield base


# The bodies that take OpenAI's input items: a union of some thirty item types, with every tool's. Two loads of the
# document, so that each has a configuration of its own.
WITH_ITEMS = ["POST /conversations", "POST /conversations/{conversation_id}/items", "POST /responses"]
light = schemathesis.openapi.from_path(DOCUMENT).exclude(name=WITH_ITEMS)
heavy = schemathesis.openapi.from_path(DOCUMENT)
heavy = heavy.exclude(name=[f"{op.ok().method.upper()} {op.ok().path}" for op in light.get_all_operations()])
# For those, generated cases only, valid ones: their coverage phase (a case for each keyword of each of the thirty
# schemas) would take minutes, and schemathesis cannot make invalid data for all of them (it fails on a `not` it
# makes itself). Invalid bodies of these operations are test_errors.py's.
heavy.config.phases.coverage.enabled = False
heavy.config.generation.update(modes=[GenerationMode.POSITIVE])


def _settings(examples: int) -> Any:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _throwaway(live_base: str, key: str) -> dict[str, Any]:
    """A conversation with two items, for a DELETE to delete."""
    created = httpx.post(
        f"{live_base}/openai/v1/conversations",
        json={"items": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert created.status_code == 200, created.text
    conversation = created.json()["id"]
    items = httpx.get(
        f"{live_base}/openai/v1/conversations/{conversation}/items", headers={"Authorization": f"Bearer {key}"}
    ).json()["data"]
    return {"conversation_id": conversation, "item_ids": [i["id"] for i in items]}


def openai_shapes(ctx: Any, response: Any, case: Any) -> bool | None:
    """An answer is the body OpenAI's document gives its operation (a refusal, OpenAI's error body with a status
    OpenAI answers), its schemas read as the JSON Schema they are. Not schemathesis's response_schema_conformance:
    it reads the document's discriminators, which have no mapping, as naming schemas (``Message``), the OpenAPI
    rule, where OpenAI's own answers carry the item's type (``message``)."""
    if response.status_code >= 400:
        assert response.status_code in OPENAI_STATUSES, response.status_code
        assert_valid("ErrorResponse", response.json())
        return True
    if response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return None  # a stream (stream: true): its content type is the document's, its events are test_responses'
    body = response.json()
    name = answer_schema(case.method, case.operation.path)
    if name == "ConversationItemList" and not body["data"]:
        body = {**body, "first_id": "", "last_id": ""}  # an empty list names no first and last item: null
    assert_valid(name, body)
    return True


@light.parametrize()
@_settings(MAX_EXAMPLES)
def test_reads_updates_and_deletes_keep_openais_document(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    _call(case, seeded, live_base)


@heavy.parametrize()
@_settings(MAX_EXAMPLES_WITH_ITEMS)
def test_posts_of_items_keep_openais_document(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    _call(case, seeded, live_base)


def _call(case: Any, seeded: dict[str, Any], live_base: str) -> None:
    # Most cases address real rows (a DELETE, rows of its own: the seeded ones must outlive it); the rest keep
    # generated ids, which must be refusals in OpenAI's envelope.
    rows = _throwaway(live_base, seeded["key"]) if case.method == "DELETE" else seeded
    params = case.path_parameters or {}
    if "conversation_id" in params and RNG.random() < 0.8:
        params["conversation_id"] = rows["conversation_id"]
    if "item_id" in params and RNG.random() < 0.8:
        params["item_id"] = RNG.choice(rows["item_ids"])
    if "response_id" in params and RNG.random() < 0.8:
        params["response_id"] = seeded["response_id"]
    body = case.body
    if isinstance(body, dict) and RNG.random() < 0.5:
        # Half of the bodies made answerable: OpenAI's document allows much that the mount refuses by design
        # (request tools, store: false, item types it does not store), which would leave no request to succeed.
        if case.path == "/responses":
            for refused in ("tools", "prompt", "store", "previous_response_id"):
                body.pop(refused, None)
            body["conversation"] = seeded["conversation_id"]
            if not isinstance(body.get("input"), str) or not body["input"]:
                body["input"] = "Hello from the fuzzer"
        elif "items" in body:
            body["items"] = [{"role": "user", "content": "Hello from the fuzzer"}]
    try:
        case.call_and_validate(
            base_url=live_base + "/openai/v1",
            headers={"Authorization": f"Bearer {seeded['key']}"},
            checks=[not_a_server_error, content_type_conformance, openai_shapes],
        )
    except Exception as exc:
        exc.add_note(f"server log:\n{server_log(live_base)[-5000:]}")
        raise


def test_a_stream_whose_run_outlasts_the_wait_ends_with_a_timeout_error_event(
    seeded: dict[str, Any], live_base: str
) -> None:
    """On this server no worker runs and the wait is 0.2 s: the run stays queued past the wait."""
    client = openai.OpenAI(api_key=seeded["key"], base_url=f"{live_base}/openai/v1", max_retries=0)
    events = list(
        client.responses.create(
            model="gpt-4o", conversation=seeded["conversation_id"], input="still there?", stream=True
        )
    )
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    assert events[-1].code == "timeout" and events[-1].sequence_number == 2
    assert_valid("ResponseStreamEvent", events[-1].to_dict())
    response = client.responses.retrieve(events[0].response.id)
    assert response.status == "queued" and response.output == []
