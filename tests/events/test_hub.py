"""The in-process hub: wake-ups after commits, transient events, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.conftest import make_tenant
from threadline.events import service as events
from threadline.events.hub import EventHub


async def test_a_commit_wakes_its_workspaces_subscribers_only(sessionmaker: Any) -> None:
    mine, theirs = await make_tenant(sessionmaker), await make_tenant(sessionmaker)
    hub = EventHub()
    try:
        sub = await hub.subscribe(mine.workspace_id)
        other = await hub.subscribe(theirs.workspace_id)
        async with sessionmaker() as session, session.begin():
            events.record(session, workspace_id=mine.workspace_id, type="thread.updated", data={})
            assert not sub.changed.is_set()  # not before the commit
        assert sub.changed.is_set() and not other.changed.is_set()
        assert hub.subscriber_count == 2
        hub.unsubscribe(sub)
        hub.unsubscribe(other)
        assert hub.subscriber_count == 0
    finally:
        await hub.close()


async def test_transient_events_reach_the_subscribers_of_their_thread() -> None:
    hub = EventHub()
    thread = uuid.uuid4()
    try:
        whole = await hub.subscribe(7)
        one = await hub.subscribe(7, thread_id=thread)
        elsewhere = await hub.subscribe(7, thread_id=uuid.uuid4())
        await hub.publish_transient(7, type="message.delta", data={"delta": "x"}, thread_id=str(thread))
        assert [e["data"] for e in whole.take_transient()] == [{"delta": "x"}]
        assert [e["seq"] for e in one.take_transient()] == [None]
        assert elsewhere.take_transient() == []
    finally:
        await hub.close()


async def test_closing_streams_ends_waiting_subscriptions_at_once() -> None:
    hub = EventHub()
    sub = await hub.subscribe(1)
    waiter = asyncio.create_task(sub.wait(60))
    await asyncio.sleep(0)
    hub.close_streams()
    await asyncio.wait_for(waiter, 1)
    assert sub.closed
    late = await hub.subscribe(1)
    assert late.closed
    await hub.close()
