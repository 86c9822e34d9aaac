"""The inbox's live stream (GET /console/events/inbox) against a real server process: an ``inbox`` event when a
thread of the workspace changes, bursts folded into few events, nothing for another workspace, and the stream's
end when the session is signed out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.console.conftest import csrf_of, make_operator, sign_in
from tests.factories import create_thread, post_message

Maker = async_sessionmaker[AsyncSession]
STREAM = "/console/events/inbox"


class Events:
    """The event names a stream has sent so far (read in the background)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ended = asyncio.Event()
        self.opened = asyncio.Event()

    async def wait_for(self, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.names) < count:
            assert time.monotonic() < deadline, f"{len(self.names)} events after {within} s, expected {count}"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def listening(client: httpx.AsyncClient, stream: str = STREAM) -> AsyncIterator[Events]:
    events = Events()

    async def read() -> None:
        try:
            async with client.stream("GET", stream, timeout=httpx.Timeout(5, read=None)) as r:
                assert r.status_code == 200, await r.aread()
                assert r.headers["content-type"].startswith("text/event-stream")
                assert r.headers["cache-control"] == "no-store"
                async for line in r.aiter_lines():
                    if line.startswith("retry:"):
                        events.opened.set()
                    if line.startswith("event: "):
                        events.names.append(line.removeprefix("event: "))
        finally:
            events.ended.set()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(events.opened.wait(), 5)
        await asyncio.sleep(0.2)  # subscribed before the first read: give it the time to look once
        yield events
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # the stream's own failures are asserted by the tests
            pass


@asynccontextmanager
async def signed_in(base: str, sessionmaker: Maker, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await sign_in(client, await make_operator(sessionmaker, tenant))
        yield client


async def test_a_change_to_a_thread_sends_an_inbox_event_and_bursts_are_folded(
    console_server: str, sessionmaker: Maker, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with (
        httpx.AsyncClient(base_url=console_server, headers=tenant.headers, timeout=10) as v1,
        httpx.AsyncClient(base_url=console_server, headers=other_tenant.headers, timeout=10) as theirs,
        signed_in(console_server, sessionmaker, tenant) as client,
    ):
        thread = await create_thread(v1)
        their_thread = await create_thread(theirs)
        async with listening(client) as events:
            started = time.monotonic()
            await post_message(v1, thread["id"], "hello")
            await events.wait_for(1, within=2)
            assert time.monotonic() - started < 2
            assert events.names == ["inbox"]
            # Another workspace's activity: nothing.
            await post_message(theirs, their_thread["id"], "hello from elsewhere")
            await asyncio.sleep(1.0)
            assert events.names == ["inbox"]
            # A thread change (a handoff) counts too; a burst of 20 messages is folded into a few events.
            r = await v1.patch(f"/v1/threads/{thread['id']}", json={"active": False})
            assert r.status_code == 200
            await events.wait_for(2, within=2)
            await asyncio.sleep(0.5)
            before = len(events.names)
            started = time.monotonic()
            await asyncio.gather(*(post_message(v1, thread["id"], f"m{i}") for i in range(20)))
            await asyncio.sleep(1.0)
            elapsed = time.monotonic() - started
            sent = len(events.names) - before
            assert 1 <= sent <= elapsed / 0.3 + 2, (sent, elapsed)
            assert set(events.names) == {"inbox"}
            assert not events.ended.is_set()


async def test_the_stream_ends_when_the_session_signs_out(
    console_server: str, sessionmaker: Maker, tenant: Tenant
) -> None:
    async with signed_in(console_server, sessionmaker, tenant) as client:
        csrf = csrf_of((await client.get("/console/inbox")).text)
        async with listening(client) as events:
            assert not events.ended.is_set()
            # Signed out from another tab (the same cookie): this stream ends within the session check's interval.
            async with httpx.AsyncClient(base_url=console_server, cookies=client.cookies) as other_tab:
                r = await other_tab.post("/console/sign-out", data={"csrf_token": csrf})
                assert r.status_code == 303
            await asyncio.wait_for(events.ended.wait(), 5)
        r = await client.get(STREAM)
        assert r.status_code == 401


async def test_a_change_made_while_the_page_was_drawn_still_refreshes_it(
    console_server: str, sessionmaker: Maker, tenant: Tenant
) -> None:
    """The page names the log's head it was drawn from (``?after=``): a change committed between drawing the page
    and opening its stream (marking the opened thread read, a message) is sent at once, not lost."""
    async with (
        httpx.AsyncClient(base_url=console_server, headers=tenant.headers, timeout=10) as v1,
        signed_in(console_server, sessionmaker, tenant) as client,
    ):
        thread = await create_thread(v1)
        page = (await client.get("/console/inbox")).text
        marker = 'sse-connect="/console/events/inbox?after='
        assert marker in page
        after = int(page.split(marker, 1)[1].split('"', 1)[0])
        await post_message(v1, thread["id"], "while the page was on its way")
        async with listening(client, f"{STREAM}?after={after}") as events:
            await events.wait_for(1, within=2)
            assert events.names == ["inbox"]
        # Without it, the stream starts from now: the same change is not news.
        async with listening(client) as events:
            await asyncio.sleep(1.0)
            assert events.names == []
        r = await client.get(f"{STREAM}?after=-1")
        assert r.status_code == 422
