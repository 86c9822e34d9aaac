"""The thread view's live stream over real HTTP (a server process): this thread's events as HTML fragments under
the console's event names, nothing of another thread, resuming with Last-Event-ID, and its end when the session
ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant, make_tenant
from tests.console.conftest import OperatorAccount, make_operator, sign_in
from tests.events.sse import Stream
from tests.factories import create_agent, create_thread, post_message

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def tenant_api(console_server: str, sessionmaker: Maker) -> AsyncIterator[tuple[Tenant, httpx.AsyncClient]]:
    tenant = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=console_server, headers=tenant.headers, timeout=10) as api:
        yield tenant, api


@pytest.fixture
async def account(sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]) -> OperatorAccount:
    return await make_operator(sessionmaker, tenant_api[0])


@pytest.fixture
async def browser(console_server: str, account: OperatorAccount) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A signed-in console client (cookies kept, redirects not followed), and its CSRF token."""
    async with httpx.AsyncClient(base_url=console_server, timeout=10, follow_redirects=False) as client:
        yield client, await sign_in(client, account)


async def quiet_thread(api: httpx.AsyncClient) -> dict[str, Any]:
    return await create_thread(api, agent_id=(await create_agent(api, name="Quiet"))["id"])


async def test_the_stream_sends_this_threads_events_as_fragments_and_nothing_of_another_thread(
    tenant_api: tuple[Tenant, httpx.AsyncClient], browser: tuple[httpx.AsyncClient, str]
) -> None:
    _, api = tenant_api
    client, _ = browser
    thread, other = await quiet_thread(api), await quiet_thread(api)
    async with Stream(client, f"/console/threads/{thread['id']}/events") as stream:
        assert stream.response is not None and stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        await post_message(api, other["id"], "not for this view")
        message = await post_message(api, thread["id"], "<b>hello</b> there")
        frames = await stream.wait_for(3)
        assert [f.event for f in frames] == ["tl-message", "tl-read", "tl-thread"]
        appended = frames[0]
        assert appended.id is not None and int(appended.id) > 0  # resumable
        assert f'id="m-{message["id"]}"' in appended.data and "&lt;b&gt;hello&lt;/b&gt; there" in appended.data
        assert "<b>" not in appended.data
        r = await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})
        assert r.status_code == 200
        r = await api.post(f"/v1/threads/{thread['id']}/read", json={})
        assert r.status_code == 200
        frames = await stream.wait_for(5)
    assert [f.event for f in frames[3:]] == ["tl-thread", "tl-oob"]
    assert f'id="st-{message["id"]}" data-status="RECEIVED" hx-swap-oob="true"' in frames[4].data
    assert all("not for this view" not in f.data for f in stream.frames)


async def test_a_reconnecting_view_gets_what_it_missed_after_its_last_event_id(
    tenant_api: tuple[Tenant, httpx.AsyncClient], browser: tuple[httpx.AsyncClient, str]
) -> None:
    _, api = tenant_api
    client, _ = browser
    thread = await quiet_thread(api)
    async with Stream(client, f"/console/threads/{thread['id']}/events") as stream:
        await post_message(api, thread["id"], "before the break")
        (first, *_) = await stream.wait_for(1)
    missed = [await post_message(api, thread["id"], f"while away {i}") for i in range(3)]
    headers = {"Last-Event-ID": first.id or ""}
    async with Stream(client, f"/console/threads/{thread['id']}/events", headers=headers) as stream:
        frames = await stream.wait_for(7)
    appended = [f for f in frames if f.event == "tl-message"]
    assert [m["id"] for m in missed] == [a.data.split('id="m-', 1)[1][:36] for a in appended]
    assert "before the break" not in "".join(f.data for f in frames)


async def test_the_stream_ends_when_the_session_does(
    tenant_api: tuple[Tenant, httpx.AsyncClient], browser: tuple[httpx.AsyncClient, str], console_server: str
) -> None:
    _, api = tenant_api
    client, csrf = browser
    thread = await quiet_thread(api)
    async with Stream(client, f"/console/threads/{thread['id']}/events") as stream:
        assert stream.response is not None and stream.response.status_code == 200
        r = await client.post("/console/sign-out", data={"csrf_token": csrf})
        assert r.status_code == 303
        (ended,) = await stream.wait_for(1, seconds=10)
        assert ended.event == "tl-signed-out"
        assert stream._task is not None
        await asyncio.wait_for(stream._task, 5)  # the server closed the stream
    # Signed out, there is no stream to open: a 401 page (an EventSource follows no redirect to sign in).
    r = await client.get(f"/console/threads/{thread['id']}/events")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")


async def test_another_workspaces_thread_has_no_stream(
    sessionmaker: Maker, browser: tuple[httpx.AsyncClient, str], console_server: str
) -> None:
    client, _ = browser
    other = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=console_server, headers=other.headers, timeout=10) as their_api:
        theirs = await quiet_thread(their_api)
    r = await client.get(f"/console/threads/{theirs['id']}/events")
    assert r.status_code == 404 and "Not found" in r.text
