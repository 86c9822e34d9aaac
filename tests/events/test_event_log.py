"""The event log: one event per change, written in the change's transaction, numbered in commit order."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.conftest import Tenant, make_tenant
from tests.factories import create_thread, post_message
from threadline.events import service as events
from threadline.events.repository import EventRepository, purge_events
from threadline.kit.clock import utcnow
from threadline.models import Event, Workspace


async def _log(sessionmaker: Any, workspace_id: int, after: int = 0) -> list[Any]:
    async with sessionmaker() as session:
        return list(await EventRepository(session, workspace_id).after(after, limit=10_000))


async def test_each_change_records_its_event_with_contiguous_seqs_from_one(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await create_thread(api)
    first = await post_message(api, thread["id"], "one")
    second = await post_message(api, thread["id"], "two")
    r = await api.patch(f"/v1/threads/{thread['id']}/messages/{first['id']}", json={"read": True})
    assert r.status_code == 200
    r = await api.patch(f"/v1/threads/{thread['id']}/messages/{first['id']}", json={"read": True})
    assert r.status_code == 200  # already read: no change, no event
    r = await api.post(f"/v1/threads/{thread['id']}/read", json={})
    assert r.status_code == 200 and r.json()["marked"] == 1
    r = await api.patch(f"/v1/threads/{thread['id']}", json={"blocked": True, "active": True})
    assert r.status_code == 200
    assert (await api.delete(f"/v1/threads/{thread['id']}")).status_code == 204

    log = await _log(sessionmaker, tenant.workspace_id)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert [(e.type, e.changes) for e in log] == [
        ("thread.created", None),
        ("message.created", None),
        ("message.created", None),
        ("message.updated", ["read_at"]),
        ("message.updated", ["read_at"]),
        ("thread.updated", ["blocked"]),  # active was already true
        ("thread.deleted", None),
    ]
    assert {str(e.thread_id) for e in log} == {thread["id"]}  # kept after the thread is gone
    posted = {k: v for k, v in first.items() if k not in ("run", "replies")}
    assert log[1].data == posted and log[2].data["id"] == second["id"]
    assert log[3].data["id"] == first["id"] and log[3].data["read"] is True
    assert log[4].data["id"] == second["id"] and log[4].data["read"] is True
    assert log[5].data["blocked"] is True
    assert log[6].data == {"object": "thread", "id": thread["id"], "deleted": True}
    async with sessionmaker() as session:
        assert await EventRepository(session, tenant.workspace_id).last_seq() == len(log)


async def test_a_refused_request_leaves_no_event(api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any) -> None:
    thread = await create_thread(api)
    before = await _log(sessionmaker, tenant.workspace_id)
    r = await api.post(
        f"/v1/threads/{thread['id']}/messages",
        json={"content": "x", "in_response_to": "00000000-0000-7000-8000-000000000000"},
    )
    assert r.status_code == 400
    assert await _log(sessionmaker, tenant.workspace_id) == before


async def test_events_commit_or_roll_back_with_their_transaction(sessionmaker: Any) -> None:
    tenant = await make_tenant(sessionmaker)
    ws = tenant.workspace_id
    try:
        async with sessionmaker() as session, session.begin():
            events.record(session, workspace_id=ws, type="thread.updated", data={"n": 1})
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    assert await _log(sessionmaker, ws) == []

    async with sessionmaker() as session, session.begin():
        events.record(session, workspace_id=ws, type="thread.updated", data={"n": 2})
        async with session.begin_nested():  # releasing a savepoint is not the commit
            pass
        assert len(events.pending_events(session)) == 1
        seq_now = (await session.execute(select(Workspace.last_event_seq).where(Workspace.id == ws))).scalar_one()
        assert seq_now == 0
    log = await _log(sessionmaker, ws)
    assert [(e.seq, e.data) for e in log] == [(1, {"n": 2})]

    async with sessionmaker() as session:  # the same through an explicit commit()
        events.record(session, workspace_id=ws, type="thread.updated", data={"n": 3})
        events.record(session, workspace_id=ws, type="thread.updated", data={"n": 4})
        await session.commit()
    assert [(e.seq, e.data["n"]) for e in await _log(sessionmaker, ws)] == [(1, 2), (2, 3), (3, 4)]


async def test_a_tailing_reader_never_sees_a_gap_while_many_writers_commit(
    client: httpx.AsyncClient, sessionmaker: Any
) -> None:
    """Seq order is commit order: a reader that resumes after the last seq it saw never skips one that
    commits later (the property every consumer relies on), with writers on many threads at once."""
    tenant = await make_tenant(sessionmaker)
    client.headers.update(tenant.headers)
    threads = [await create_thread(client) for _ in range(8)]
    base = len(threads)
    per_writer = 25
    total = base + len(threads) * per_writer
    done = asyncio.Event()

    async def writer(thread_id: str) -> None:
        for i in range(per_writer):
            await post_message(client, thread_id, f"m{i}")

    seen: list[int] = []

    async def reader() -> None:
        cursor = 0
        while len(seen) < total:
            rows = await _log(sessionmaker, tenant.workspace_id, after=cursor)
            for row in rows:
                assert row.seq == cursor + 1, f"saw {row.seq} after {cursor}: a gap a consumer would skip"
                cursor = row.seq
                seen.append(row.seq)
            if not rows:
                if done.is_set() and len(seen) < total:
                    continue
                await asyncio.sleep(0.002)

    tail = asyncio.create_task(reader())
    await asyncio.gather(*(writer(t["id"]) for t in threads))
    done.set()
    await asyncio.wait_for(tail, 30)
    assert seen == list(range(1, total + 1))


async def test_old_events_are_purged_after_their_retention(sessionmaker: Any) -> None:
    tenant = await make_tenant(sessionmaker)
    async with sessionmaker() as session, session.begin():
        events.record(session, workspace_id=tenant.workspace_id, type="thread.updated", data={"old": True})
    async with sessionmaker() as session, session.begin():
        events.record(session, workspace_id=tenant.workspace_id, type="thread.updated", data={"old": False})
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Event)
            .where(Event.workspace_id == tenant.workspace_id, Event.seq == 1)
            .values(created_at=utcnow() - timedelta(days=40))
        )
    async with sessionmaker() as session, session.begin():
        assert await purge_events(session, before=utcnow() - timedelta(days=30)) >= 1
    assert [e.data for e in await _log(sessionmaker, tenant.workspace_id)] == [{"old": False}]
