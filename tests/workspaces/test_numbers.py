"""Threads and messages numbered per workspace (workspaces.numbers): from 1 in every workspace, unique
within it, whatever the other workspaces, the connections and the server processes do."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import Tenant, make_tenant
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.livesrv import live_server
from threadline.config import Settings
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.flows.send import append_message
from threadline.messages.service import NewMessage
from threadline.models import Message, Thread, WorkspaceCounter
from threadline.models.enums import Role
from threadline.threads import service as threads
from threadline.workspaces import numbers
from threadline.workspaces.service import create_workspace

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def app_client(app: Any) -> AsyncIterator[Any]:
    """A client of the test app for any tenant: ``app_client(tenant)``."""
    clients: list[httpx.AsyncClient] = []

    def for_tenant(tenant: Tenant) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        c = httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=tenant.headers)
        clients.append(c)
        return c

    yield for_tenant
    for c in clients:
        await c.aclose()


async def _append(maker: Maker, workspace_id: int, thread_id: str, content: str) -> Message:
    async with maker() as session, session.begin():
        appended = await append_message(
            session, workspace_id=workspace_id, thread_id=thread_id, new=NewMessage(role=Role.USER, content=content)
        )
        return appended.message


async def _numbers_in(maker: Maker, model: Any, workspace_id: int) -> list[int]:
    async with maker() as session:
        rows = await session.scalars(select(model.number).where(model.workspace_id == workspace_id))
        return sorted(rows)


async def test_a_new_workspaces_first_thread_and_message_are_number_1_however_busy_the_others_are(
    app_client: Any, tenant: Tenant, sessionmaker: Maker
) -> None:
    busy = app_client(tenant)
    for i in range(4):
        thread = await create_thread(busy)
        for j in range(3):
            await post_message(busy, thread["id"], f"{i}.{j}")
    new = app_client(await make_tenant(sessionmaker))
    thread = await create_thread(new)
    first, second = await post_message(new, thread["id"], "a"), await post_message(new, thread["id"], "b")
    assert (thread["number"], first["number"], second["number"]) == (1, 1, 2)


async def test_two_workspaces_writing_in_turn_each_count_their_own_numbers(
    app_client: Any, tenant: Tenant, other_tenant: Tenant
) -> None:
    a, b = app_client(tenant), app_client(other_tenant)
    seen: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    threads_of = {"a": await create_thread(a), "b": await create_thread(b)}
    for i in range(8):
        for name, client in (("a", a), ("b", b)):
            if i == 4:  # a second thread each, half way through
                threads_of[name] = await create_thread(client)
                seen[name].append(("thread", threads_of[name]["number"]))
            message = await post_message(client, threads_of[name]["id"], f"{name}{i}")
            seen[name].append(("message", message["number"]))
    for name in ("a", "b"):
        assert [n for kind, n in seen[name] if kind == "message"] == list(range(1, 9))
        assert [n for kind, n in seen[name] if kind == "thread"] == [2]


async def test_a_rolled_back_message_leaves_its_number_unused_or_given_back_never_given_twice(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker
) -> None:
    thread = await create_thread(api)
    before = await post_message(api, thread["id"], "kept")
    async with sessionmaker() as session:
        async with session.begin():
            dropped = (
                await append_message(
                    session, workspace_id=tenant.workspace_id, thread_id=thread["id"], new=NewMessage(role=Role.USER)
                )
            ).message
            await session.rollback()
    after = await post_message(api, thread["id"], "kept too")
    assert before["number"] < dropped.number <= after["number"]  # SQLite hands it back; PostgreSQL skips it
    assert await _numbers_in(sessionmaker, Message, tenant.workspace_id) == [before["number"], after["number"]]


async def test_messages_written_at_once_over_many_connections_and_two_engines_get_unique_numbers(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker, settings: Settings
) -> None:
    """Two engines stand for two server processes: each takes blocks of its own from the same counters."""
    thread_ids = [(await create_thread(api))["id"] for _ in range(4)]
    second = create_engine(settings)
    try:
        makers = [sessionmaker, create_sessionmaker(write_engine(second), Settings())]
        pairs = itertools.product(range(10), thread_ids)
        written = await asyncio.gather(
            *(_append(makers[i % 2], tenant.workspace_id, thread_id, f"m{i}") for i, (_, thread_id) in enumerate(pairs))
        )
    finally:
        await second.dispose()
    given = sorted(m.number for m in written)
    assert len(set(given)) == len(given) == 40
    assert await _numbers_in(sessionmaker, Message, tenant.workspace_id) == given
    async with sessionmaker() as session:
        counter = await session.get(WorkspaceCounter, tenant.workspace_id)
    assert counter is not None and counter.last_message_number >= given[-1]  # numbers to come are beyond them


async def test_a_restarted_process_counts_on_past_every_number_handed_out_before(
    tenant: Tenant, sessionmaker: Maker, settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        before = [await numbers.take(session, workspace_id=tenant.workspace_id, of=Message) for _ in range(10)]
    async with sessionmaker() as session:
        counter = await session.get(WorkspaceCounter, tenant.workspace_id)
        assert counter is not None
        reserved = counter.last_message_number  # on PostgreSQL, the rest of this process's block too
    restarted = create_engine(settings)  # a new process: no block of its own yet
    try:
        async with create_sessionmaker(write_engine(restarted), Settings())() as session, session.begin():
            after = await numbers.take(session, workspace_id=tenant.workspace_id, of=Message)
    finally:
        await restarted.dispose()
    assert before == list(range(1, 11))
    assert after == reserved + 1 and after > max(before)


async def test_a_workspace_created_in_the_same_transaction_numbers_its_first_rows_itself(
    sessionmaker: Maker,
) -> None:
    """The first start makes its workspace and the demo thread and message in one transaction: nothing
    outside that transaction sees the workspace's counters yet."""
    async with sessionmaker() as session, session.begin():
        workspace = await create_workspace(session, name=f"numbered-at-birth-{uuid.uuid4().hex[:8]}")
        taken = [
            await numbers.take(session, workspace_id=workspace.id, of=Thread),
            await numbers.take(session, workspace_id=workspace.id, of=Message),
            await numbers.take(session, workspace_id=workspace.id, of=Message),
        ]
    assert taken == [1, 1, 2]
    async with sessionmaker() as session, session.begin():
        later = await numbers.take(session, workspace_id=workspace.id, of=Message)
    assert later == 3


@pytest.mark.postgres_only
async def test_an_open_transaction_that_took_a_number_holds_up_no_other_writer_of_its_workspace(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker
) -> None:
    """No lock on the workspace's counters lasts until a writer commits: a message left uncommitted (its
    thread's row lock held, as a slow request or a run holds it) delays no write to another thread."""
    held, other = (await create_thread(api))["id"], (await create_thread(api))["id"]
    async with sessionmaker() as session:
        async with session.begin():
            open_one = (
                await append_message(
                    session, workspace_id=tenant.workspace_id, thread_id=held, new=NewMessage(role=Role.USER)
                )
            ).message
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            locks = await _locks_on_counters(sessionmaker, pid)
            assert locks == [], f"the open transaction holds {locks} on workspace_counters"
            # Its number used up the workspace's first block: the next writer takes a new one, at once.
            done = await asyncio.wait_for(_append(sessionmaker, tenant.workspace_id, other, "not held up"), timeout=10)
    assert open_one.number != done.number
    assert await _numbers_in(sessionmaker, Message, tenant.workspace_id) == sorted([open_one.number, done.number])


async def _locks_on_counters(maker: Maker, pid: int) -> list[str]:
    async with maker() as session:
        rows = await session.scalars(
            text(
                "SELECT l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = :pid AND c.relname = 'workspace_counters'"
            ),
            {"pid": pid},
        )
        return list(rows)


@pytest.mark.postgres_only
async def test_a_busy_workspace_takes_its_numbers_in_growing_blocks(
    engine: AsyncEngine, tenant: Tenant, sessionmaker: Maker
) -> None:
    statements: list[str] = []
    allocator = numbers._allocator(engine.sync_engine)

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(allocator.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessionmaker() as session:
            taken = [await numbers.take(session, workspace_id=tenant.workspace_id, of=Message) for _ in range(100)]
    finally:
        event.remove(allocator.engine.sync_engine, "before_cursor_execute", count)
    assert taken == list(range(1, 101))
    # Blocks of 1, 2, 4, ... 64, each taken by a statement of its own on the allocator's connections: seven
    # statements for 100 numbers, instead of one per message.
    assert 1 <= len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) <= 8


@pytest.mark.postgres_only
async def test_two_server_processes_writing_to_one_workspace_never_give_a_number_twice(
    database_url: str, engine: Any, tenant: Tenant, sessionmaker: Maker
) -> None:
    with live_server(database_url) as a, live_server(database_url) as b:
        async with (
            httpx.AsyncClient(base_url=a, headers=tenant.headers, timeout=30) as one,
            httpx.AsyncClient(base_url=b, headers=tenant.headers, timeout=30) as two,
        ):
            agent, end_user = await create_agent(one), await create_end_user(two)
            made = [
                await create_thread(client, agent_id=agent["id"], end_user_id=end_user["id"])
                for client in (one, two, one, two)
            ]
            written = await asyncio.gather(
                *(post_message((one, two)[i % 2], made[i % 4]["id"], f"m{i}") for i in range(60))
            )
    assert len({t["number"] for t in made}) == 4
    given = sorted(m["number"] for m in written)
    assert len(set(given)) == 60
    assert await _numbers_in(sessionmaker, Message, tenant.workspace_id) == given
    # Each process's blocks start small: the numbers stay close to the count, not spread over a range.
    assert given[-1] <= 60 + 2 * numbers.MAX_BLOCK


async def test_a_thread_is_found_by_its_number_only_in_its_own_workspace(
    app_client: Any, tenant: Tenant, other_tenant: Tenant, sessionmaker: Maker
) -> None:
    mine = await create_thread(app_client(tenant))
    theirs = await create_thread(app_client(other_tenant))
    assert mine["number"] == theirs["number"] == 1
    async with sessionmaker() as session:
        key = await threads.thread_key(session, workspace_id=tenant.workspace_id, thread_id=1)
        their_key = await threads.thread_key(session, workspace_id=other_tenant.workspace_id, thread_id=1)
        public = await session.scalar(select(Thread.public_id).where(Thread.id == key))
        count = await session.scalar(select(func.count()).select_from(Thread).where(Thread.id.in_([key, their_key])))
    assert key != their_key and str(public) == mine["id"] and count == 2
