"""Migration 0009: rows that exist keep their id as their number, and each workspace counts on from its own
highest number, so no id handed out before the upgrade changes or is handed out again."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Column, MetaData, Table, func, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.db.test_migrations import fresh_engine  # noqa: F401  (the fixture: a database of the test's own)
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_sessionmaker, write_engine
from threadline.flows.send import append_message
from threadline.kit.clock import utcnow
from threadline.messages.service import NewMessage
from threadline.models import Agent, EndUser, Message, Thread, Workspace, WorkspaceCounter
from threadline.models.enums import Direction, MessageStatus, Role, SentBy
from threadline.threads import service as threads
from threadline.threads.schemas import ThreadCreate


async def _insert(conn: AsyncConnection, model: Any, **values: Any) -> int:
    """A row of ``model``'s table as it is at this revision: only the columns that exist now (with the
    models' Python defaults for those not given)."""
    present = {c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns(model.__tablename__))}
    columns: list[Column[Any]] = [c._copy() for c in model.__table__.columns if c.name in present]
    table = Table(model.__tablename__, MetaData(), *columns)
    result = await conn.execute(insert(table).values(**values).returning(table.c.id))
    return int(result.scalar_one())


async def _seed_before(conn: AsyncConnection) -> dict[str, Any]:
    """Two workspaces whose threads and messages were created in turn: their ids interleave."""
    now = utcnow()
    ws = [await _insert(conn, Workspace, name=f"before-{i}-{uuid.uuid4().hex[:6]}") for i in range(2)]
    agents = [await _insert(conn, Agent, workspace_id=w, name="a", type="TEXT") for w in ws]
    end_users = [await _insert(conn, EndUser, workspace_id=w, display_name="eu", channel="api") for w in ws]
    thread_ids: dict[int, list[int]] = {w: [] for w in ws}
    for i in (0, 1, 0, 0, 1):
        w = ws[i]
        thread_ids[w].append(
            await _insert(
                conn, Thread, workspace_id=w, agent_id=agents[i], end_user_id=end_users[i], last_seq=0, message_count=0
            )
        )
    message_ids: dict[int, list[int]] = {w: [] for w in ws}
    for n, i in enumerate((1, 0, 0, 1, 1, 0, 1)):
        w = ws[i]
        message_ids[w].append(
            await _insert(
                conn,
                Message,
                workspace_id=w,
                thread_id=thread_ids[w][0],
                seq=len(message_ids[w]) + 1,
                role=Role.USER,
                direction=Direction.INBOUND,
                sent_by=SentBy.END_USER,
                status=MessageStatus.RECEIVED,
                content=f"m{n}",
                created_at=now,
                updated_at=now,
            )
        )
    return {"workspaces": ws, "threads": thread_ids, "messages": message_ids}


async def test_rows_keep_their_ids_as_numbers_and_new_ones_count_on_past_them(
    fresh_engine: AsyncEngine,  # noqa: F811
) -> None:
    await migrate.upgrade(fresh_engine, "0008")
    async with fresh_engine.begin() as conn:
        before = await _seed_before(conn)
    await migrate.upgrade(fresh_engine)

    maker = create_sessionmaker(write_engine(fresh_engine), Settings())
    async with maker() as session:
        for model, kind in ((Thread, "threads"), (Message, "messages")):
            rows = (await session.execute(select(model.id, model.number, model.workspace_id))).all()
            assert all(r.number == r.id for r in rows), f"{kind} changed numbers: {rows}"
            assert {w: sorted(r.id for r in rows if r.workspace_id == w) for w in before["workspaces"]} == before[kind]
        counters = {c.workspace_id: c for c in (await session.scalars(select(WorkspaceCounter))).all()}
    for w in before["workspaces"]:
        assert counters[w].last_thread_number == max(before["threads"][w])
        assert counters[w].last_message_number == max(before["messages"][w])

    # New rows: each workspace counts on from its own highest number.
    ws = before["workspaces"]
    new_threads, new_messages = {}, {}
    for w in ws:
        async with maker() as session, session.begin():
            agent = await session.scalar(select(Agent.public_id).where(Agent.workspace_id == w))
            end_user = await session.scalar(select(EndUser.public_id).where(EndUser.workspace_id == w))
            data = ThreadCreate(agent_id=str(agent), end_user_id=str(end_user))
            thread = await threads.create_thread(session, workspace_id=w, data=data)
            message = (
                await append_message(
                    session,
                    workspace_id=w,
                    thread_id=str(thread.public_id),
                    new=NewMessage(role=Role.USER, content="new"),
                )
            ).message
            new_threads[w], new_messages[w] = thread.number, message.number
    for w in ws:
        assert new_threads[w] == max(before["threads"][w]) + 1
        assert new_messages[w] == max(before["messages"][w]) + 1

    # An old number still names its thread (camelAI looks threads up by workspace and number).
    async with maker() as session:
        for w in ws:
            for old in before["threads"][w]:
                assert await threads.thread_key(session, workspace_id=w, thread_id=old) == old

    # Down again: every row is still there (on SQLite, rebuilding a table would cascade-delete through it).
    await migrate.downgrade(fresh_engine, "0008")
    async with fresh_engine.connect() as conn:
        for model, kind in ((Thread, "threads"), (Message, "messages")):
            total = await conn.scalar(select(func.count()).select_from(Table(model.__tablename__, MetaData())))
            assert total == sum(len(v) for v in before[kind].values()) + len(ws)
    await migrate.upgrade(fresh_engine)
