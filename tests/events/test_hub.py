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


async def test_the_shared_tail_reads_once_per_wake_up_and_says_when_it_does_not_reach_back(
    sessionmaker: Any,
) -> None:
    from threadline.db.engine import create_sessionmaker, read_engine
    from threadline.events.hub import WorkspaceTail

    tenant = await make_tenant(sessionmaker)
    ws = tenant.workspace_id

    async def write(n: int) -> None:
        for i in range(n):
            async with sessionmaker() as session, session.begin():
                events.record(session, workspace_id=ws, type="thread.updated", data={"i": i})

    await write(2)
    reads = create_sessionmaker(read_engine(sessionmaker.kw["bind"]))
    tail = WorkspaceTail(ws, reads, capacity=3)
    await tail.refresh()
    assert (tail.base, tail.head, tail.rows) == (2, 2, [])  # it starts at the present
    assert tail.since(1) is None and tail.since(2) == []
    await write(8)
    await tail.refresh()
    assert tail.since(2) == []  # no wake-up yet: nothing read
    tail.want()
    tail.want()
    await asyncio.gather(tail.refresh(), tail.refresh())
    assert tail.head == 10
    # Over twice its capacity it keeps the newest ``capacity`` events; older cursors read the log.
    assert [r.seq for r in tail.rows] == [8, 9, 10] and tail.base == 7
    assert tail.since(6) is None
    assert [r.seq for r in tail.since(8) or []] == [9, 10]
    frame = tail.rows[-1].frame.decode()
    assert frame.startswith("id: 10\nevent: thread.updated\ndata: {") and frame.endswith("}\n\n")
