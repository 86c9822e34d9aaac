"""Events committed in one API process reach a stream held by another (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Tenant
from tests.events.sse import Stream
from tests.factories import create_thread, post_message
from tests.livesrv import live_server
from threadline.events.hub import LISTENER_NAME, EventHub

pytestmark = pytest.mark.postgres_only

# Far longer than any delay the test accepts: only a notification can deliver in time.
NO_POLLING = {"THREADLINE_EVENTS_POLL_INTERVAL_S": "120"}


@pytest.fixture(scope="module")
def two_servers(database_url: str, engine: Any) -> Iterator[tuple[str, str]]:
    with live_server(database_url, **NO_POLLING) as a, live_server(database_url, **NO_POLLING) as b:
        yield a, b


@pytest.fixture
async def clients(two_servers: tuple[str, str], tenant: Tenant) -> AsyncIterator[tuple[Any, Any]]:
    a, b = two_servers
    async with (
        httpx.AsyncClient(base_url=a, headers=tenant.headers, timeout=10) as reader,
        httpx.AsyncClient(base_url=b, headers=tenant.headers, timeout=10) as writer,
    ):
        yield reader, writer


async def test_a_message_written_through_one_process_streams_from_another(clients: tuple[Any, Any]) -> None:
    reader, writer = clients
    thread = await create_thread(writer)
    delays = []
    async with Stream(reader, "/v1/events") as stream:
        for i in range(20):
            started = time.perf_counter()
            await post_message(writer, thread["id"], f"from B {i}")
            await stream.wait_for(i + 1, seconds=5)
            delays.append(time.perf_counter() - started)
    assert [f.json["data"]["content"] for f in stream.events] == [f"from B {i}" for i in range(20)]
    # Not a latency assertion (bench/events.py measures that): without the notification each would take
    # the 120 s poll interval.
    assert max(delays) < 5


async def test_a_stream_survives_its_listener_connection_being_killed(clients: tuple[Any, Any], engine: Any) -> None:
    reader, writer = clients
    thread = await create_thread(writer)
    async with Stream(reader, "/v1/events") as stream:
        await post_message(writer, thread["id"], "before")
        await stream.wait_for(1)
        async with engine.connect() as conn:
            killed = (
                await conn.execute(
                    text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": LISTENER_NAME},
                )
            ).scalar_one()
        assert killed >= 1
        await post_message(writer, thread["id"], "while reconnecting")
        await stream.wait_for(2, seconds=10)  # the listener comes back and wakes every stream
        await post_message(writer, thread["id"], "after")
        await stream.wait_for(3, seconds=5)
    assert [f.json["data"]["content"] for f in stream.events] == ["before", "while reconnecting", "after"]


async def test_transient_events_reach_other_processes_without_an_id(
    clients: tuple[Any, Any], tenant: Tenant, engine: Any
) -> None:
    reader, writer = clients
    thread = await create_thread(writer)
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    hub = EventHub(postgres_dsn=dsn)
    try:
        async with Stream(reader, f"/v1/threads/{thread['id']}/events") as stream:
            await hub.publish_transient(
                tenant.workspace_id, type="message.delta", data={"delta": "Hel"}, thread_id=thread["id"]
            )
            await hub.publish_transient(
                tenant.workspace_id, type="message.delta", data={"delta": "lo"}, thread_id="another-thread"
            )
            await post_message(writer, thread["id"], "stored")
            frames = await stream.wait_for(2)
            await asyncio.sleep(0.2)
    finally:
        await hub.close()
    delta = next(f for f in frames if f.event == "message.delta")
    assert delta.id is None and delta.json["id"] is None and delta.json["seq"] is None
    assert delta.json["data"] == {"delta": "Hel"}
    assert [f.event for f in stream.events].count("message.delta") == 1  # the other thread's never came
    stored = next(f for f in frames if f.event == "message.created")
    assert stored.id is not None
