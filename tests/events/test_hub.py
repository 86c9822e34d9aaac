"""The in-process hub: wake-ups after commits, transient events, shutdown."""

from __future__ import annotations

import asyncio
import json
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
    from threadline.db.engine import create_sessionmaker, read_engine, sessionmaker_settings
    from threadline.events.hub import WorkspaceTail

    tenant = await make_tenant(sessionmaker)
    ws = tenant.workspace_id

    async def write(n: int) -> None:
        for i in range(n):
            async with sessionmaker() as session, session.begin():
                events.record(session, workspace_id=ws, type="thread.updated", data={"i": i})

    await write(2)
    reads = create_sessionmaker(read_engine(sessionmaker.kw["bind"]), sessionmaker_settings(sessionmaker))
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


async def test_this_process_commits_reach_the_tail_as_written_without_reading_them_back(
    sessionmaker: Any, monkeypatch: Any
) -> None:
    from threadline.db.engine import create_sessionmaker, read_engine, sessionmaker_settings
    from threadline.events.repository import EventRepository

    tenant = await make_tenant(sessionmaker)
    ws = tenant.workspace_id
    reads: list[int] = []
    original = EventRepository.after

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(EventRepository, "after", counted)
    hub = EventHub(
        read_maker=create_sessionmaker(read_engine(sessionmaker.kw["bind"]), sessionmaker_settings(sessionmaker))
    )
    try:
        sub = await hub.subscribe(ws)
        for i in range(3):
            async with sessionmaker() as session, session.begin():
                events.record(session, workspace_id=ws, type="thread.updated", data={"id": f"t{i}", "i": i})
                events.record(session, workspace_id=ws, type="message.created", data={"id": f"m{i}"})
        tail = hub.tail(ws)
        assert tail is not None
        await tail.refresh()
        assert reads == []  # absorbed from the commits, never read back
        assert [r.seq for r in tail.since(0) or []] == [1, 2, 3, 4, 5, 6] and tail.base == 0
        assert [r.object_id for r in tail.rows[:2]] == ["t0", "m0"]
        # The same events a read of the log gives (PostgreSQL's jsonb may order an object's keys its own way).
        async with sessionmaker() as session:
            stored = await original(EventRepository(session, ws), 0, limit=10)
        from threadline.events.hub import _encode_row

        def parsed(frame: bytes) -> Any:
            head, _, data = frame.decode().partition("data: ")
            return head, json.loads(data)

        assert [parsed(r.frame) for r in tail.rows] == [parsed(_encode_row(row)) for row in stored]
        # A notification for what the tail holds costs nothing; one for something newer reads it.
        hub.notify_stored(ws, upto=6)
        await tail.refresh()
        assert reads == []
        async with sessionmaker() as session, session.begin():
            events.record(session, workspace_id=ws, type="thread.updated", data={})
        tail.head -= 1  # as if that commit had come from another process: the tail is one behind
        tail.rows.pop()
        hub.notify_stored(ws, upto=7)
        await tail.refresh()
        assert len(reads) == 1 and [r.seq for r in tail.rows][-2:] == [6, 7]
        assert sub.changed.is_set()
    finally:
        await hub.close()


async def test_a_commit_that_does_not_continue_the_tail_makes_it_read_the_gap(sessionmaker: Any) -> None:
    from threadline.db.engine import create_sessionmaker, read_engine, sessionmaker_settings
    from threadline.events.hub import WorkspaceTail

    tenant = await make_tenant(sessionmaker)
    ws = tenant.workspace_id
    tail = WorkspaceTail(
        ws, create_sessionmaker(read_engine(sessionmaker.kw["bind"]), sessionmaker_settings(sessionmaker))
    )
    await tail.refresh()  # at the present: head 0
    committed: list[Any] = []
    for i in range(3):
        async with sessionmaker() as session, session.begin():
            committed.append(events.record(session, workspace_id=ws, type="thread.updated", data={"i": i}))
    tail.absorb([committed[2]])  # seq 3 arrives first: 1 and 2 (another process's, say) were not seen
    assert tail.head == 0
    await tail.refresh()
    assert [r.seq for r in tail.rows] == [1, 2, 3]
    tail.absorb(committed[:2])  # late, and already read: ignored
    assert [r.seq for r in tail.rows] == [1, 2, 3]
