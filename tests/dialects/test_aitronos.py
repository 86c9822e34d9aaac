"""Aitronos's GET /v1/threads/{thread_id}/messages, served under /aitronos (seed 003)."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.conftest import Tenant, add_key
from tests.dialects.seed import ITERATIONS, TOOL_CALLS, Seeded, seed_everything
from tests.factories import create_thread, post_message
from threadline.kit.ids import parse_uuid
from threadline.models import Message
from threadline.models.enums import Scope

URL = "/aitronos/v1/threads/{}/messages"
DOCUMENT = Path(__file__).with_name("documents") / "003_1eb59125baa32056.txt"
MESSAGE_KEYS = ["id", "created_at", "thread_id", "role", "content", "attachments", "metadata"]
ASSISTANT_KEYS = [*MESSAGE_KEYS, "tool_calls", "iterations"]
ENVELOPE_KEYS = ["object", "data", "first_id", "last_id", "has_more"]


def key(tenant: Tenant) -> dict[str, str]:
    return {"X-API-Key": tenant.key}


def ordered(value: Any) -> str:
    """JSON text keeping key order: equal only when the values and every object's key order are equal."""
    return json.dumps(value)


def _document() -> tuple[str, dict[str, Any]]:
    """The endpoint path and the example response, as the vendor's page prints them."""
    text = DOCUMENT.read_text()
    path = re.search(r"GEThttps://api\.aitronos\.com(\S+)", text)
    assert path is not None
    start = text.index("{", text.index("Response:"))
    example, _ = json.JSONDecoder().raw_decode(text[start:])
    return path.group(1), example


def _substitute(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


async def _set_created_at(sessionmaker: Any, message_id: str, at: datetime) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Message).where(Message.public_id == parse_uuid(message_id)).values(created_at=at))


async def test_the_documents_example_response_field_for_field(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    path, example = _document()
    assert "/aitronos" + path == URL.format("{thread_id}")
    thread = await create_thread(api)
    user = await post_message(api, thread["id"], "Hello, world!")
    reply = await post_message(
        api, thread["id"], "Hello! How can I help you today?", role="assistant", tool_calls=[], iterations=[]
    )
    await _set_created_at(sessionmaker, user["id"], datetime(2025, 11, 17, 10, 0, tzinfo=UTC))
    await _set_created_at(sessionmaker, reply["id"], datetime(2025, 11, 17, 10, 1, tzinfo=UTC))

    r = await anon.get(URL.format(thread["id"]), headers=key(tenant))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    expected = _substitute(example, {"msg_123": user["id"], "msg_456": reply["id"], "thread_abc123": thread["id"]})
    assert expected != example  # every id was replaced by ours
    assert r.json() == expected
    assert ordered(r.json()) == ordered(expected)


def _shown(seeded: Seeded) -> list[dict[str, Any]]:
    return [m for m in seeded.messages if m["role"] != "hidden"]


async def test_first_page_pinned_in_full(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    r = await anon.get(URL.format(seeded.thread_id), headers=key(tenant))
    assert r.status_code == 200, r.text
    body = r.json()
    shown = _shown(seeded)
    assert len(seeded.messages) == 19 and len(shown) == 18  # all on the first page (limit 20)
    by_content = {m["content"]: m for m in seeded.messages}
    with_steps = {by_content["It shipped yesterday."]["id"], by_content["No tools were needed."]["id"]}

    def expected(m: dict[str, Any]) -> dict[str, Any]:
        item = {
            "id": m["id"],
            "created_at": m["created_at"],
            "thread_id": seeded.thread_id,
            "role": m["role"],
            "content": m["content"],
            "attachments": m["attachments"],
            "metadata": m["metadata"],
        }
        if m["id"] in with_steps:
            item |= {"tool_calls": m["tool_calls"], "iterations": m["iterations"]}
        return item

    want = {
        "object": "list",
        "data": [expected(m) for m in shown],
        "first_id": shown[0]["id"],
        "last_id": shown[-1]["id"],
        "has_more": False,
    }
    assert body == want
    assert ordered(body) == ordered(want)
    assert list(body) == ENVELOPE_KEYS

    data = body["data"]
    assert [m["role"] for m in data[:8]] == [
        "user", "assistant", "assistant", "system", "tool", "assistant", "assistant", "assistant"
    ]  # fmt: skip
    assert "internal note" not in r.text
    assert data[0] == {
        "id": seeded.messages[0]["id"],
        "created_at": seeded.messages[0]["created_at"],
        "thread_id": seeded.thread_id,
        "role": "user",
        "content": "Where is my **order** A-17?",
        "attachments": [],
        "metadata": {},
    }
    # tool_calls/iterations: on the assistant's messages that recorded them, nowhere else.
    assert list(data[1]) == ASSISTANT_KEYS
    assert (data[1]["tool_calls"], data[1]["iterations"]) == (TOOL_CALLS, ITERATIONS)
    assert data[5]["content"] == "No tools were needed."
    assert list(data[5]) == ASSISTANT_KEYS and data[5]["tool_calls"] == [] and data[5]["iterations"] == []
    assert data[2]["content"] == "Hello from a human." and list(data[2]) == MESSAGE_KEYS
    assert [list(m) for m in data if m["id"] not in with_steps] == [MESSAGE_KEYS] * 16
    assert {m["role"] for m in data if "tool_calls" in m or "iterations" in m} == {"assistant"}
    assert data[8]["metadata"] == {"k": "v"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", data[0]["created_at"])


async def _walk(anon: httpx.AsyncClient, tenant: Tenant, thread_id: str, **params: Any) -> list[dict[str, Any]]:
    """Pages from ``params`` until has_more is false, each next one from ``step(page)``."""
    step = params.pop("step")
    pages = []
    query = dict(params)
    for _ in range(50):
        r = await anon.get(URL.format(thread_id), params=query, headers=key(tenant))
        assert r.status_code == 200, r.text
        page = r.json()
        assert list(page) == ENVELOPE_KEYS and page["object"] == "list"
        assert 0 < len(page["data"]) <= params["limit"]
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        pages.append(page)
        if not page["has_more"]:
            return pages
        query = {**params, **step(page)}
    raise AssertionError("the walk does not end")


@pytest.mark.parametrize(
    ("params", "backward"),
    [
        ({"limit": 4, "order": "asc", "step": lambda p: {"after": p["last_id"]}}, False),
        ({"limit": 5, "order": "desc", "step": lambda p: {"before": p["last_id"]}}, True),
        ({"limit": 3, "order": "asc", "before": "LAST", "step": lambda p: {"before": p["first_id"]}}, True),
        ({"limit": 7, "order": "desc", "after": "FIRST", "step": lambda p: {"after": p["first_id"]}}, False),
        ({"limit": 1, "step": lambda p: {"after": p["last_id"]}}, False),
        ({"limit": 100, "order": "desc", "step": lambda p: {}}, False),
    ],
    ids=["asc-after", "desc-before", "asc-before", "desc-after", "limit-1", "limit-100"],
)
async def test_paging_walks_the_whole_thread_without_gap_or_duplicate(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    sessionmaker: Any,
    params: dict[str, Any],
    backward: bool,
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    shown = [m["id"] for m in _shown(seeded)]
    params = dict(params)
    # A walk that starts at a cursor starts at the last (or first) message: it is not on any page.
    ends = {"FIRST": shown[0], "LAST": shown[-1]}
    for cursor in ("after", "before"):
        if cursor in params:
            params[cursor] = ends[params[cursor]]
    pages = await _walk(anon, tenant, seeded.thread_id, **params)
    seen = [m["id"] for page in pages for m in page["data"]]
    expected = [i for i in shown if i not in (params.get("after"), params.get("before"))]
    # Within a page, `order` sorts; across pages the walk moves towards older or newer messages.
    for page in pages:
        ids = [m["id"] for m in page["data"]]
        assert ids == sorted(ids, key=shown.index, reverse=params.get("order") == "desc")
    assert sorted(seen, key=shown.index) == expected and len(seen) == len(set(seen))
    # Each page lies wholly on the side the walk moves to: newer messages forward, older ones backward.
    for earlier, later in itertools.pairwise(pages):
        a = [shown.index(m["id"]) for m in earlier["data"]]
        b = [shown.index(m["id"]) for m in later["data"]]
        assert (max(b) < min(a)) if backward else (min(b) > max(a))
    assert all(p["has_more"] for p in pages[:-1]) and not pages[-1]["has_more"]


async def test_the_four_cursor_combinations_as_on_v1(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    m = [(await post_message(api, thread["id"], f"m{i}"))["id"] for i in range(1, 11)]
    m.insert(0, "")  # m[1] is the oldest

    async def page(**params: Any) -> tuple[list[str], bool]:
        r = await anon.get(URL.format(thread["id"]), params={"limit": 3, **params}, headers=key(tenant))
        assert r.status_code == 200, r.text
        return [d["content"] for d in r.json()["data"]], r.json()["has_more"]

    assert await page(after=m[4], order="asc") == (["m5", "m6", "m7"], True)
    assert await page(after=m[4], order="desc") == (["m7", "m6", "m5"], True)
    assert await page(before=m[4], order="asc") == (["m1", "m2", "m3"], False)
    assert await page(before=m[8], order="desc") == (["m7", "m6", "m5"], True)
    assert await page(after=m[2], before=m[6]) == (["m3", "m4", "m5"], False)
    assert await page(after=m[2], before=m[7]) == (["m3", "m4", "m5"], True)
    assert await page() == (["m1", "m2", "m3"], True)
    assert await page(order="desc") == (["m10", "m9", "m8"], True)
    r = await anon.get(URL.format(thread["id"]), headers=key(tenant))
    assert [d["content"] for d in r.json()["data"]] == [f"m{i}" for i in range(1, 11)]  # default asc, limit 20
    # Past the end: an empty page, and first_id/last_id null.
    r = await anon.get(URL.format(thread["id"]), params={"after": m[10]}, headers=key(tenant))
    assert r.json() == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


async def test_a_hidden_message_is_skipped_and_still_a_place_in_the_thread(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    first = await post_message(api, thread["id"], "one")
    hidden = await post_message(api, thread["id"], "note", role="hidden")
    last = await post_message(api, thread["id"], "two", role="assistant")
    r = await anon.get(URL.format(thread["id"]), params={"limit": 1, "after": first["id"]}, headers=key(tenant))
    assert [m["id"] for m in r.json()["data"]] == [last["id"]] and r.json()["has_more"] is False
    r = await anon.get(URL.format(thread["id"]), params={"after": hidden["id"]}, headers=key(tenant))
    assert r.status_code == 200 and [m["content"] for m in r.json()["data"]] == ["two"]
    r = await anon.get(URL.format(thread["id"]), params={"after": last["id"]}, headers=key(tenant))
    assert r.status_code == 200 and r.json()["data"] == []


async def test_output_modes_change_only_content(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    bodies = {}
    for mode in (None, "text", "plain", "blocks", "structured"):
        params = {"output_mode": mode} if mode else {}
        r = await anon.get(URL.format(seeded.thread_id), params=params, headers=key(tenant))
        assert r.status_code == 200, r.text
        bodies[mode] = r.json()

    def without_content(body: dict[str, Any]) -> str:
        return ordered({**body, "data": [{k: v for k, v in m.items() if k != "content"} for m in body["data"]]})

    assert bodies["text"] == bodies[None]
    assert len({without_content(b) for b in bodies.values()}) == 1
    assert all(
        list(m) == list(t) for b in bodies.values() for m, t in zip(b["data"], bodies[None]["data"], strict=True)
    )
    text, plain, blocks = (bodies[m]["data"] for m in ("text", "plain", "blocks"))
    assert text[0]["content"] == "Where is my **order** A-17?"
    assert plain[0]["content"] == "Where is my order A-17?"
    assert blocks[0]["content"] == [{"type": "text", "text": "Where is my **order** A-17?"}]
    assert blocks[1]["content"] == [
        {"type": "tool_call", "id": "call_1", "name": "lookup_order", "arguments": {"order_id": "A-17"}},
        {"type": "tool_result", "tool_call_id": "call_1", "content": {"status": "shipped"}, "is_error": False},
        {"type": "text", "text": "It shipped yesterday."},
    ]
    buttons = next(m for m in blocks if m["id"] == seeded.messages[7]["id"])
    assert buttons["content"] == [
        {"type": "buttons", "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}
    ]
    image = next(m for m in blocks if m["role"] == "assistant" and m["content"] and m["content"][0]["type"] == "image")
    assert image["content"] == [{"type": "image", "url": "https://cdn.example.com/p.jpg"}]
    assert bodies["structured"] == bodies["blocks"]
    assert all(isinstance(m["content"], str) for m in plain)


# --- errors -------------------------------------------------------------------------------------------


def _envelope(r: httpx.Response, status: int, type_: str, code: str, param: str | None = None) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"] and list(body["error"]) == ["type", "code", "message", "param"]
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == (type_, code, param)
    message: str = body["error"]["message"]
    assert message and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "tl_not_a_key"},
        "bearer",
        "x-api-key-as-query",
    ],
    ids=["no-key", "empty-key", "unknown-key", "bearer", "not-a-header"],
)
async def test_without_a_valid_x_api_key_the_answer_is_401(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, headers: Any
) -> None:
    thread = await create_thread(api)
    params = {}
    if headers == "bearer":  # the /v1 way is not this surface's credential
        headers = {"Authorization": f"Bearer {tenant.key}"}
    elif headers == "x-api-key-as-query":
        headers, params = {}, {"X-API-Key": tenant.key, "api_key": tenant.key}
    r = await anon.get(URL.format(thread["id"]), headers=headers, params=params)
    _envelope(r, 401, "authentication_error", "unauthenticated")
    # Checked before the query: a bad query from an unknown caller is still a 401.
    r = await anon.get(URL.format(thread["id"]), headers=headers, params={**params, "limit": "0"})
    assert r.status_code == 401


async def test_a_key_without_read_scope_is_403_and_a_read_only_key_reads(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await create_thread(api)
    none = await add_key(sessionmaker, tenant, ())
    r = await anon.get(URL.format(thread["id"]), headers={"X-API-Key": none})
    assert "scope" in _envelope(r, 403, "permission_error", "insufficient_scope")
    read = await add_key(sessionmaker, tenant, (Scope.READ,))
    r = await anon.get(URL.format(thread["id"]), headers={"X-API-Key": read})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"order": "ASC"}, "order"),
        ({"output_mode": "html"}, "output_mode"),
        ({"output_mode": ""}, "output_mode"),
    ],
)
async def test_bad_query_values_are_400_naming_the_param(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], param: str
) -> None:
    thread = await create_thread(api)
    await post_message(api, thread["id"], "hi")
    r = await anon.get(URL.format(thread["id"]), params=params, headers=key(tenant))
    message = _envelope(r, 400, "invalid_request_error", "invalid_request", param)
    assert message.startswith(f"{param}: ")


@pytest.mark.parametrize("cursor", ["after", "before"])
async def test_cursors_that_name_no_message_of_the_thread_are_400(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, cursor: str
) -> None:
    thread = await create_thread(api)
    mine = await post_message(api, thread["id"], "hi")
    other = await create_thread(api)
    elsewhere = await post_message(api, other["id"], "in another thread")
    for value in (str(uuid.uuid4()), "msg_123", "", elsewhere["id"], "x" * 5000):
        r = await anon.get(URL.format(thread["id"]), params={cursor: value}, headers=key(tenant))
        message = _envelope(r, 400, "invalid_request_error", "invalid_request", cursor)
        assert message == f"{cursor}: no message with id '{value[:64]}' in this thread"
    # With the other cursor valid, and with a page that would not be empty.
    other_cursor = "before" if cursor == "after" else "after"
    r = await anon.get(
        URL.format(thread["id"]), params={cursor: str(uuid.uuid4()), other_cursor: mine["id"]}, headers=key(tenant)
    )
    _envelope(r, 400, "invalid_request_error", "invalid_request", cursor)


async def test_threads_this_key_cannot_see_are_identical_404s(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    thread = await create_thread(api)
    await post_message(api, thread["id"], "secret")
    answers = [
        await anon.get(URL.format(thread["id"]), headers=key(other_tenant)),
        await anon.get(URL.format(uuid.uuid4()), headers=key(other_tenant)),
        await anon.get(URL.format(uuid.uuid4()), headers=key(tenant)),
        await anon.get(URL.format("thread_abc123"), headers=key(tenant)),
        await anon.get(URL.format("not-a-uuid"), headers=key(tenant)),
        # A 404 is answered before a cursor is looked at.
        await anon.get(URL.format(uuid.uuid4()), params={"after": str(uuid.uuid4())}, headers=key(tenant)),
        await anon.get(URL.format(thread["id"]), params={"before": str(uuid.uuid4())}, headers=key(other_tenant)),
    ]
    for r in answers:
        _envelope(r, 404, "not_found_error", "not_found")
    assert len({r.content for r in answers}) == 1
    # A cursor that is no id at all is refused before any lookup: the same 400 whoever's the thread is.
    refused = [
        await anon.get(URL.format(thread["id"]), params={"after": "nope"}, headers=key(other_tenant)),
        await anon.get(URL.format(uuid.uuid4()), params={"after": "nope"}, headers=key(other_tenant)),
    ]
    for r in refused:
        _envelope(r, 400, "invalid_request_error", "invalid_request", "after")
    assert refused[0].content == refused[1].content
    assert "secret" not in answers[0].text and thread["id"] not in answers[0].text


async def test_the_thread_id_is_shown_in_its_canonical_form(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    await post_message(api, thread["id"], "hi")
    r = await anon.get(URL.format(thread["id"].upper()), headers=key(tenant))
    assert r.status_code == 200
    assert [m["thread_id"] for m in r.json()["data"]] == [thread["id"]]


async def test_other_methods_and_routes_answer_in_the_envelope(anon: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await anon.post(URL.format(uuid.uuid4()), headers=key(tenant))
    _envelope(r, 405, "invalid_request_error", "method_not_allowed")
    r = await anon.get("/aitronos/v1/threads", headers=key(tenant))
    _envelope(r, 404, "not_found_error", "not_found")


async def test_tool_calls_and_iterations_are_shown_on_assistant_messages_only(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await create_thread(api)
    created = [
        await post_message(api, thread["id"], "question"),
        await post_message(api, thread["id"], '{"ok": true}', role="tool"),
        await post_message(api, thread["id"], "a note", role="system"),
        await post_message(api, thread["id"], "only steps", role="assistant", iterations=ITERATIONS),
        await post_message(api, thread["id"], "only tools", role="assistant", tool_calls=TOOL_CALLS),
    ]
    # Recorded on messages of other roles too (as a channel or an import might): still not shown there.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.public_id.in_([parse_uuid(m["id"]) for m in created[:3]]))
            .values(tool_calls=TOOL_CALLS, iterations=ITERATIONS)
        )
    r = await anon.get(URL.format(thread["id"]), headers=key(tenant))
    data = r.json()["data"]
    assert [list(m) for m in data] == [
        MESSAGE_KEYS,
        MESSAGE_KEYS,
        MESSAGE_KEYS,
        [*MESSAGE_KEYS, "iterations"],
        [*MESSAGE_KEYS, "tool_calls"],
    ]
    assert data[3]["iterations"] == ITERATIONS and data[4]["tool_calls"] == TOOL_CALLS
