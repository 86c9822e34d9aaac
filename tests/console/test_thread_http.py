"""The console's thread view over HTTP: the view and its pieces, tenancy on every route, CSRF on every change, and
each change made through the same flow as the API's (the same rows, events and audit records)."""

from __future__ import annotations

import asyncio
import re
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.console.conftest import OperatorAccount, make_operator, sign_in
from tests.console.test_security import _assert_no_inline_code as assert_no_inline_code
from tests.factories import create_agent, create_end_user, create_thread, post_message
from threadline.console import service as console_service
from threadline.console.thread_live import ThreadStream
from threadline.console.thread_view import thread_row
from threadline.console.web import SESSION_COOKIE
from threadline.events.repository import EventRepository

Maker = async_sessionmaker[AsyncSession]
HTMX = {"HX-Request": "true"}
_IDS = re.compile(r'data-message="([0-9a-f-]{36})"')


@pytest.fixture
async def signed_in(console_http: httpx.AsyncClient, operator: OperatorAccount) -> tuple[httpx.AsyncClient, str]:
    """The console client, signed in as ``operator``; its CSRF token."""
    return console_http, await sign_in(console_http, operator)


async def quiet_thread(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A thread whose agent has no version: messages start no run."""
    agent = await create_agent(api, name="Concierge")
    end_user = await create_end_user(api, display_name=fields.pop("name", "Grace Hopper"), **fields)
    return await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])


async def events_after(sessionmaker: Maker, tenant: Tenant, seq: int) -> list[Any]:
    async with sessionmaker() as session:
        return list(await EventRepository(session, tenant.workspace_id).after(seq, limit=1000))


async def head(sessionmaker: Maker, tenant: Tenant) -> int:
    async with sessionmaker() as session:
        return await EventRepository(session, tenant.workspace_id).last_seq()


async def get_thread(api: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/threads/{thread_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def message_ids(html: str) -> list[str]:
    return _IDS.findall(html)


# ------------------------------------------------------------------------------------------------ the view


async def test_a_thread_opens_as_a_fragment_for_htmx_and_inside_the_inbox_page_otherwise(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    client, _ = signed_in
    thread = await quiet_thread(api, name="Grace Hopper", channel="api", metadata={"plan": "pro"}, info="VIP")
    await post_message(api, thread["id"], "Where is my order?")
    fragment = await client.get(f"/console/threads/{thread['id']}", headers=HTMX)
    assert fragment.status_code == 200, fragment.text
    assert "<html" not in fragment.text and 'id="thread"' in fragment.text
    assert "Where is my order?" in fragment.text and "Grace Hopper" in fragment.text
    assert f'sse-connect="/console/threads/{thread["id"]}/events?after=' in fragment.text
    assert "plan" in fragment.text and "pro" in fragment.text and "VIP" in fragment.text  # the end user's panel
    assert_no_inline_code(fragment.text)  # the CSP allows none: behaviour comes from htmx attributes and console.js
    whole = await client.get(f"/console/threads/{thread['id']}")
    assert whole.status_code == 200, whole.text
    assert whole.text.startswith("<!doctype html>") and 'id="thread-list"' in whole.text and 'id="thread"' in whole.text
    # Restoring history (htmx, after back/forward) wants the whole page too.
    restored = await client.get(
        f"/console/threads/{thread['id']}", headers={**HTMX, "HX-History-Restore-Request": "true"}
    )
    assert restored.text.startswith("<!doctype html>")


async def test_the_view_links_to_the_agent_version_and_lists_the_end_users_other_threads(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    client, _ = signed_in
    version = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "system_prompt": "Be kind."}
    agent = await create_agent(api, name="Concierge", version=version)
    other_agent = await create_agent(api, name="Billing")
    end_user = await create_end_user(api, display_name="Ada")
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])
    other = await create_thread(api, agent_id=other_agent["id"], end_user_id=end_user["id"])
    stranger = await quiet_thread(api, name="Someone else")
    html = (await client.get(f"/console/threads/{thread['id']}", headers=HTMX)).text
    assert f'href="/console/agents#version-{agent["current_version"]["id"]}"' in html
    assert f'href="/console/threads/{other["id"]}"' in html and "Billing" in html
    assert stranger["id"] not in html


async def test_roles_are_told_apart_and_content_is_escaped(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str], operator: OperatorAccount
) -> None:
    client, _ = signed_in
    thread = await quiet_thread(api)
    await post_message(api, thread["id"], "<img src=x onerror=alert(1)> and <script>alert(2)</script>")
    await post_message(api, thread["id"], "Let me check", role="assistant", tool_calls=[_CALL], iterations=[_STEP])
    await post_message(api, thread["id"], "On it", role="assistant", user_id=operator.user_public_id)
    await post_message(api, thread["id"], "Handed to billing", role="system")
    await post_message(api, thread["id"], "An internal draft", role="hidden")
    html = (await client.get(f"/console/threads/{thread['id']}", headers=HTMX)).text
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    kinds = re.findall(r'class="msg msg-([a-z_]+)[^"]*" id="m-', html)
    assert kinds == ["end_user", "agent", "operator", "system", "hidden"]
    assert "Ada Lovelace" in html  # the operator who wrote it
    # The agent's tool call, collapsed under its message: name, arguments, result, timing.
    trace = html[html.index('<details class="trace">') :]
    trace = trace[: trace.index("</details>")]
    assert "order_status" in trace and "&#34;order&#34;: &#34;A1&#34;" in trace and "shipped" in trace
    assert "340 ms" in trace and "Step 1" in trace and "1.2 s" in trace


async def test_media_and_buttons_are_rendered_and_only_web_links_are_linked(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    client, _ = signed_in
    thread = await quiet_thread(api)
    await post_message(api, thread["id"], "a photo", type="image", media_url="https://cdn.example.com/p/cat.jpg")
    await post_message(
        api,
        thread["id"],
        "see",
        attachments=[
            {"url": "javascript:alert(1)", "name": "evil.pdf"},
            {"url": "https://x.example/a.pdf", "name": "invoice.pdf"},
        ],
    )
    html = (await client.get(f"/console/threads/{thread['id']}", headers=HTMX)).text
    assert 'href="https://cdn.example.com/p/cat.jpg"' in html and "cat.jpg" in html
    assert 'href="https://x.example/a.pdf"' in html and "invoice.pdf" in html
    assert "javascript:" not in html and "evil.pdf" in html  # shown, not linked


# ------------------------------------------------------------------------------------------------ pages


async def test_older_pages_walk_back_with_no_gap_and_no_repeat(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    client, _ = signed_in
    thread = await quiet_thread(api)
    sent = [(await post_message(api, thread["id"], f"message {i}"))["id"] for i in range(71)]
    html = (await client.get(f"/console/threads/{thread['id']}", headers=HTMX)).text
    seen = message_ids(html)
    assert seen == sent[-30:]  # the newest page, oldest at the top
    while "data-older" in html:
        before = re.search(r"messages\?before=([0-9a-f-]{36})", html)
        assert before is not None and before.group(1) == seen[0]
        r = await client.get(
            f"/console/threads/{thread['id']}/messages", params={"before": before.group(1)}, headers=HTMX
        )
        assert r.status_code == 200, r.text
        html = r.text
        seen = message_ids(html) + seen
    assert seen == sent
    assert "Start of the conversation" in html


async def test_a_message_link_opens_the_page_around_it_marked(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    client, _ = signed_in
    thread = await quiet_thread(api)
    sent = [(await post_message(api, thread["id"], f"message {i}"))["id"] for i in range(60)]
    html = (await client.get(f"/console/threads/{thread['id']}", params={"message": sent[5]}, headers=HTMX)).text
    assert message_ids(html) == sent  # 5 older ones, it, and everything after it: no gap below
    assert f'data-target="m-{sent[5]}"' in html and f'class="msg msg-end_user is-target" id="m-{sent[5]}"' in html
    assert "Start of the conversation" in html
    html = (await client.get(f"/console/threads/{thread['id']}", params={"message": sent[40]}, headers=HTMX)).text
    assert message_ids(html) == sent[25:] and "data-older" in html
    # Not a message of this thread: the thread opens as usual.
    html = (
        await client.get(f"/console/threads/{thread['id']}", params={"message": str(uuid.uuid4())}, headers=HTMX)
    ).text
    assert message_ids(html) == sent[-30:]


# ------------------------------------------------------------------------------------------------ tenancy


async def test_another_workspaces_thread_is_a_404_page_on_every_route(
    api: httpx.AsyncClient,
    signed_in: tuple[httpx.AsyncClient, str],
    client: httpx.AsyncClient,
    other_tenant: Tenant,
) -> None:
    console, csrf = signed_in
    theirs = await quiet_thread(httpx_with(client, other_tenant))
    their_message = await post_message(httpx_with(client, other_tenant), theirs["id"], "their secret words")
    for thread_id in (theirs["id"], "not-a-thread", str(uuid.uuid4())):
        base = f"/console/threads/{thread_id}"
        for path, params in (
            (base, {}),
            (f"{base}/messages", {"before": their_message["id"]}),
            (f"{base}/chrome", {}),
            (f"{base}/events", {}),
        ):
            r = await console.get(path, params=params)
            assert r.status_code == 404, (path, r.status_code)
            assert r.headers["content-type"].startswith("text/html") and "Not found" in r.text
            assert "their secret words" not in r.text
        for action, data in _ACTIONS:
            r = await console.post(f"{base}/{action}", data=data, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 404, (action, r.status_code, r.text[:300])
    after = await get_thread(httpx_with(client, other_tenant), theirs["id"])
    assert after["active"] and not after["blocked"] and after["tags"] == [] and after["assigned_to"] == []
    assert after["message_count"] == 1


async def test_ids_of_another_workspace_inside_a_request_name_nothing(
    api: httpx.AsyncClient,
    signed_in: tuple[httpx.AsyncClient, str],
    client: httpx.AsyncClient,
    other_tenant: Tenant,
    sessionmaker: Maker,
) -> None:
    console, csrf = signed_in
    mine = await quiet_thread(api)
    their_api = httpx_with(client, other_tenant)
    theirs = await quiet_thread(their_api)
    their_message = await post_message(their_api, theirs["id"], "their secret words")
    their_user = await make_operator(sessionmaker, other_tenant)
    r = await their_api.post("/v1/tags", json={"name": "their-tag"})
    assert r.status_code == 201, r.text
    their_tag = r.json()
    base = f"/console/threads/{mine['id']}"
    headers = {"X-CSRF-Token": csrf}
    r = await console.post(
        f"{base}/assign", data={"set": "1", "assigned_to": their_user.user_public_id}, headers=headers
    )
    assert r.status_code == 404 and "their" not in r.text
    r = await console.get(f"{base}/messages", params={"before": their_message["id"]})
    assert r.status_code == 400 and "their secret words" not in r.text
    r = await console.get(base, params={"message": their_message["id"]})
    assert r.status_code == 200 and "their secret words" not in r.text
    r = await console.post(f"{base}/tags", data={"add": their_tag["id"]}, headers=headers)
    assert r.status_code == 200
    (tag,) = (await get_thread(api, mine["id"]))["tags"]
    assert tag["id"] != their_tag["id"]  # a name of this workspace, not their tag


async def test_changes_without_the_csrf_token_are_refused_and_change_nothing(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str], sessionmaker: Maker, tenant: Tenant
) -> None:
    console, csrf = signed_in
    thread = await quiet_thread(api)
    before = await head(sessionmaker, tenant)
    for action, data in _ACTIONS:
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}, {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}):
            r = await console.post(f"/console/threads/{thread['id']}/{action}", data=data, headers=headers)
            assert r.status_code == 403, (action, headers, r.status_code)
    assert await head(sessionmaker, tenant) == before  # no event: nothing changed
    now = await get_thread(api, thread["id"])
    assert now["active"] and not now["blocked"] and now["message_count"] == 0


# ------------------------------------------------------------------------------------------------ changes


async def test_an_operators_message_is_stored_with_sent_by_user_id_and_the_same_events_as_the_api(
    api: httpx.AsyncClient,
    signed_in: tuple[httpx.AsyncClient, str],
    operator: OperatorAccount,
    sessionmaker: Maker,
    tenant: Tenant,
) -> None:
    console, csrf = signed_in
    thread = await quiet_thread(api)
    r = await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})
    assert r.status_code == 200
    mark = await head(sessionmaker, tenant)
    r = await console.post(
        f"/console/threads/{thread['id']}/messages",
        data={"content": "Hello from a person"},
        headers={"X-CSRF-Token": csrf, **HTMX},
    )
    assert r.status_code == 200, r.text
    assert "Hello from a person" in r.text and 'class="msg msg-operator"' in r.text
    from_console = await events_after(sessionmaker, tenant, mark)
    mark = await head(sessionmaker, tenant)
    await post_message(api, thread["id"], "Hello from the API", role="assistant", user_id=operator.user_public_id)
    from_api = await events_after(sessionmaker, tenant, mark)
    assert [e.type for e in from_console] == [e.type for e in from_api] == ["message.created"]
    ours, theirs = from_console[0].data, from_api[0].data
    assert ours["sent_by_user_id"] == theirs["sent_by_user_id"] == operator.user_public_id
    assert (ours["role"], ours["sent_by"], ours["direction"], ours["status"]) == (
        "assistant",
        "operator",
        "OUTBOUND",
        "SENT",
    )
    assert ours.keys() == theirs.keys()
    differ = {k for k in ours if ours[k] != theirs[k]}
    assert differ == {"id", "number", "content", "source", "created_at", "updated_at", "sent_at"}, differ
    assert ours["source"] == "ui"
    r = await api.get(f"/v1/threads/{thread['id']}/messages")
    assert [m["content"] for m in r.json()["data"]] == ["Hello from a person", "Hello from the API"]


async def test_sending_while_the_agent_has_the_thread_asks_to_take_it_over_first(
    api: httpx.AsyncClient,
    signed_in: tuple[httpx.AsyncClient, str],
    operator: OperatorAccount,
    sessionmaker: Maker,
    tenant: Tenant,
) -> None:
    console, csrf = signed_in
    thread = await quiet_thread(api)
    html = (await console.get(f"/console/threads/{thread['id']}", headers=HTMX)).text
    assert "Take over and send" in html and 'name="take_over" value="1"' in html
    base = f"/console/threads/{thread['id']}"
    headers = {"X-CSRF-Token": csrf, **HTMX}
    r = await console.post(f"{base}/messages", data={"content": "Hi"}, headers=headers)
    assert r.status_code == 409 and "take it over" in r.text
    assert (await get_thread(api, thread["id"]))["message_count"] == 0
    mark = await head(sessionmaker, tenant)
    r = await console.post(f"{base}/messages", data={"content": "Hi, a person here", "take_over": "1"}, headers=headers)
    assert r.status_code == 200, r.text
    assert 'id="thread-head" hx-swap-oob="true"' in r.text and "Hand back" in r.text  # the new header, out of band
    types = [e.type for e in await events_after(sessionmaker, tenant, mark)]
    assert types == ["thread.updated", "thread.handoff_started", "message.created"]
    now = await get_thread(api, thread["id"])
    assert not now["active"] and now["message_count"] == 1
    r = await console.post(f"{base}/messages", data={"content": "   "}, headers=headers)
    assert r.status_code == 422


async def test_actions_are_the_apis_changes_done_by_the_operator(
    api: httpx.AsyncClient,
    signed_in: tuple[httpx.AsyncClient, str],
    operator: OperatorAccount,
    sessionmaker: Maker,
    tenant: Tenant,
) -> None:
    console, csrf = signed_in
    thread = await quiet_thread(api)
    colleague = await make_operator(sessionmaker, tenant, first_name="Grace", last_name="Hopper")
    base = f"/console/threads/{thread['id']}"
    headers = {"X-CSRF-Token": csrf, **HTMX}

    async def act(action: str, data: dict[str, Any]) -> list[Any]:
        mark = await head(sessionmaker, tenant)
        r = await console.post(f"{base}/{action}", data=data, headers=headers)
        assert r.status_code == 200, (action, r.text)
        assert 'id="thread-head" hx-swap-oob="true"' in r.text
        return await events_after(sessionmaker, tenant, mark)

    took = await act("take-over", {"reason": "billing question"})
    assert [e.type for e in took] == ["thread.updated", "thread.handoff_started"]
    assert took[1].data["reason"] == "billing question" and took[1].data["to"] == "human"
    assert not (await get_thread(api, thread["id"]))["active"]
    back = await act("hand-back", {})
    assert [e.type for e in back] == ["thread.updated", "thread.handoff_ended"]

    await act("assign", {"me": "1"})
    assert [u["id"] for u in (await get_thread(api, thread["id"]))["assigned_to"]] == [operator.user_public_id]
    updated = await act("assign", {"set": "1", "assigned_to": [colleague.user_public_id]})
    assert [e.type for e in updated] == ["thread.updated"] and updated[0].changes == ["assigned_to"]
    assert [u["id"] for u in (await get_thread(api, thread["id"]))["assigned_to"]] == [colleague.user_public_id]
    await act("assign", {"set": "1"})
    assert (await get_thread(api, thread["id"]))["assigned_to"] == []

    await act("tags", {"add": "Refund"})  # a new tag, created
    await act("tags", {"add": "refund"})  # the same one, by name in any case
    (tag,) = (await get_thread(api, thread["id"]))["tags"]
    assert tag["name"] == "Refund"
    r = await api.get("/v1/tags")
    assert [t["name"] for t in r.json()["data"]] == ["Refund"]
    await act("tags", {"remove": tag["id"]})
    assert (await get_thread(api, thread["id"]))["tags"] == []

    blocked = await act("block", {})
    assert [e.type for e in blocked] == ["thread.updated"] and (await get_thread(api, thread["id"]))["blocked"]
    await act("unblock", {})
    assert not (await get_thread(api, thread["id"]))["blocked"]

    # The audit log names the operator, as a user, for each handoff and (un)blocking.
    r = await api.get("/v1/audit_events", params={"limit": 100})
    assert r.status_code == 200, r.text
    mine = [e for e in r.json()["data"] if e["target"]["id"] == thread["id"]]
    assert sorted(e["action"] for e in mine) == sorted(
        ["thread.handed_off", "thread.handed_back", "thread.blocked", "thread.unblocked"]
    )
    assert all(e["actor"]["type"] == "user" and e["actor"]["id"] == operator.user_public_id for e in mine)


async def test_opening_a_thread_marks_the_end_users_messages_read(
    api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    console, csrf = signed_in
    thread = await quiet_thread(api)
    first = await post_message(api, thread["id"], "one")
    reply = await post_message(api, thread["id"], "an answer", role="assistant")
    second = await post_message(api, thread["id"], "two")
    html = (await console.get(f"/console/threads/{thread['id']}", headers=HTMX)).text
    assert f'hx-post="/console/threads/{thread["id"]}/read" hx-trigger="load, sse:tl-read"' in html
    r = await console.post(f"/console/threads/{thread['id']}/read", headers={"X-CSRF-Token": csrf, **HTMX})
    assert r.status_code == 204
    shown = {m["id"]: m for m in (await api.get(f"/v1/threads/{thread['id']}/messages")).json()["data"]}
    assert shown[first["id"]]["read"] and shown[second["id"]]["read"]
    assert not shown[reply["id"]]["read"]  # the agent's side keeps read_at for the end user's reading


# ------------------------------------------------------------------------------------------------ data


def httpx_with(client: httpx.AsyncClient, tenant: Tenant) -> httpx.AsyncClient:
    """A client for ``tenant``'s API on the same app (headers per request, so the shared client is untouched)."""
    return _Scoped(client, tenant.headers)  # type: ignore[return-value]


class _Scoped:
    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self._client, self._headers = client, headers

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self._client.get(url, headers={**self._headers, **kw.pop("headers", {})}, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self._client.post(url, headers={**self._headers, **kw.pop("headers", {})}, **kw)


_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("messages", {"content": "hello", "take_over": "1"}),
    ("take-over", {}),
    ("hand-back", {}),
    ("assign", {"me": "1"}),
    ("tags", {"add": "vip"}),
    ("block", {}),
    ("unblock", {}),
    ("read", {}),
]
_CALL = {
    "id": "call_1",
    "name": "order_status",
    "arguments": {"order": "A1"},
    "result": {"status": "shipped"},
    "duration_ms": 340,
}
_STEP = {
    "index": 0,
    "text": "Let me check",
    "reasoning": "Look the order up.",
    "tool_calls": ["call_1"],
    "finish_reason": "tool_calls",
    "usage": {"input_tokens": 120, "output_tokens": 30},
    "duration_ms": 1234,
}


async def test_an_idle_live_stream_holds_no_database_connection(
    app: Any,
    api: httpx.AsyncClient,
    signed_in: tuple[httpx.AsyncClient, str],
    engine: Any,
    sessionmaker: Maker,
    tenant: Tenant,
) -> None:
    console_client, _ = signed_in
    thread = await quiet_thread(api)
    token = console_client.cookies.get(SESSION_COOKIE) or ""
    async with sessionmaker() as session:
        operator = await console_service.operator_for(session, token=token)
        assert operator is not None
        row = await thread_row(session, workspace_id=tenant.workspace_id, thread_id=thread["id"])
    # The stream as the route builds it, driven here: between events it waits on the event hub, not the database.
    stream = ThreadStream(
        SimpleNamespace(app=app), operator, token=token, row=row, cursor=await head(sessionmaker, tenant)
    )  # type: ignore[arg-type]
    frames = stream.frames()
    try:
        assert (await anext(frames)).startswith(b"retry:")
        waiting = asyncio.ensure_future(anext(frames))
        idle = []
        for _ in range(20):  # ten checks in a row, 50 ms apart, find none checked out
            await asyncio.sleep(0.05)
            idle = [*idle, engine.pool.checkedout() == 0][-10:]
            if len(idle) == 10 and all(idle):
                break
        assert all(idle) and len(idle) == 10 and not waiting.done()
        await post_message(api, thread["id"], "wake up")
        frame = await asyncio.wait_for(waiting, 5)
        assert b"event: tl-message" in frame and b"wake up" in frame
    finally:
        await frames.aclose()
