"""The inbox's rows (threads.inbox): what each shows, in a fixed number of statements whatever the page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.integrations.helpers import create_integration, sms_body
from threadline.threads import inbox
from threadline.threads.schemas import InboxView, ThreadFilters


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _page(maker: async_sessionmaker[AsyncSession], tenant: Tenant, **kwargs: Any) -> Any:
    async with maker() as session:
        filters = kwargs.pop("filters", ThreadFilters())
        return await inbox.inbox_page(session, workspace_id=tenant.workspace_id, filters=filters, **kwargs)


async def test_a_row_shows_the_end_user_last_message_unread_handoff_assignees_and_tags(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = (await api.post("/v1/users", json={"email": "ann@example.com", "first_name": "Ann"})).json()
    tags = [(await api.post("/v1/tags", json={"name": n, "color": "red"})).json() for n in ("vip", "billing")]
    sms = await create_integration(api, sms_body())
    agent = await create_agent(api, name="Support")
    person = await create_end_user(api, display_name="Grace Hopper", channel="sms", address="+41791234567")
    thread = await create_thread(
        api,
        agent_id=agent["id"],
        end_user_id=person["id"],
        integration_id=sms["id"],
        assigned_to=[user["id"]],
        tags=[t["id"] for t in tags],
    )
    quiet = await create_thread(api)  # no message at all: it sorts by its creation, before the messages below
    first = await post_message(api, thread["id"], "first")
    await post_message(api, thread["id"], "second")
    await post_message(api, thread["id"], "  My   order\n\nnever   arrived. " + "x" * 200)

    page = await _page(sessionmaker, tenant, limit=10)
    row, empty = page.rows
    assert (row.id, empty.id) == (thread["id"], quiet["id"])
    assert row.number == thread["number"] and row.channel == "sms"
    assert asdict(row.agent) == {"id": agent["id"], "name": "Support"}
    assert asdict(row.end_user) == {
        "id": person["id"],
        "display_name": "Grace Hopper",
        "channel": "sms",
        "address": "+41791234567",
    }
    last = row.last_message
    assert last is not None and last.role == "user" and last.sent_by == "end_user" and last.type == "text"
    assert last.excerpt.startswith("My order never arrived. xxx") and last.excerpt.endswith("…")
    assert len(last.excerpt) == inbox.EXCERPT_CHARS and "\n" not in last.excerpt
    assert row.unread_count == 3 and (row.active, row.blocked, row.needs_human, row.handoff) == (
        True,
        False,
        False,
        "agent",
    )
    assert [u.email for u in row.assigned_to] == ["ann@example.com"]
    assert [t.name for t in row.tags] == ["billing", "vip"]
    assert row.last_activity_at == last.created_at
    assert empty.last_message is None and empty.unread_count == 0 and empty.tags == [] and empty.assigned_to == []
    assert empty.last_activity_at.isoformat().startswith(quiet["created_at"][:19])
    assert page.first_cursor == row.cursor and page.last_cursor == empty.cursor and page.has_more is False

    # Read up to the first message; the operator answers: 2 unread, answered by a human.
    r = await api.post(f"/v1/threads/{thread['id']}/read", json={"up_to": first["id"]})
    assert r.status_code == 200
    r = await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})
    [row] = (await _page(sessionmaker, tenant, limit=1)).rows
    assert (row.unread_count, row.needs_human, row.handoff) == (2, True, "needs_human")
    await post_message(api, thread["id"], "On its way!", role="assistant", user_id=user["id"])
    [row] = (await _page(sessionmaker, tenant, limit=1)).rows
    assert (row.unread_count, row.needs_human, row.handoff) == (2, False, "human")
    assert row.last_message is not None and row.last_message.sent_by == "operator"
    assert (await api.post(f"/v1/threads/{thread['id']}/read", json={})).status_code == 200
    [row] = (await _page(sessionmaker, tenant, limit=1)).rows
    assert row.unread_count == 0


async def test_unread_counts_stop_at_the_cap(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    thread = await create_thread(api)
    for i in range(inbox.UNREAD_CAP + 3):
        await post_message(api, thread["id"], f"m{i}")
    [row] = (await _page(sessionmaker, tenant, limit=1)).rows
    assert row.unread_count == inbox.UNREAD_CAP


async def test_a_page_takes_the_same_statements_whatever_its_size(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    users = [(await api.post("/v1/users", json={"email": f"u{i}@example.com"})).json()["id"] for i in range(3)]
    tag = (await api.post("/v1/tags", json={"name": "t"})).json()["id"]
    for i in range(30):
        t = await create_thread(api, assigned_to=users[: i % 4], tags=[tag] if i % 2 else [], active=i % 3 > 0)
        await post_message(api, t["id"], f"hello {i}")
    counts = {}
    for limit in (1, 5, 30):
        with statements(engine) as seen:
            page = await _page(sessionmaker, tenant, limit=limit)
        assert len(page.rows) == limit
        counts[limit] = len([s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))])
    assert counts[1] == counts[5] == counts[30] == 4, counts
    with statements(engine) as seen:
        async with sessionmaker() as session:
            found = await inbox.counts(
                session, workspace_id=tenant.workspace_id, filters=ThreadFilters(assigned_user_id=users[0])
            )
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1
    assert (found.all, found.mine) == (30, 22)


async def test_pages_of_a_view_walk_it_whole_and_stay_in_their_workspace(
    api: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    api.headers.update(other_tenant.headers)
    try:
        for _ in range(3):
            await post_message(api, (await create_thread(api, active=False))["id"], "theirs")
    finally:
        api.headers.update(tenant.headers)
    mine = [await create_thread(api, active=False) for _ in range(7)]
    for t in mine:
        await post_message(api, t["id"], "help")
    filters = ThreadFilters(view=InboxView.NEEDS_HUMAN)
    seen: list[str] = []
    cursor = None
    while True:
        page = await _page(sessionmaker, tenant, limit=3, filters=filters, before=cursor)
        seen.extend(r.id for r in page.rows)
        if not page.has_more:
            break
        cursor = page.last_cursor
    assert seen == [t["id"] for t in reversed(mine)]


async def test_rows_of_given_threads_in_the_order_asked_and_only_this_workspaces(
    api: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    api.headers.update(other_tenant.headers)
    try:
        theirs = await create_thread(api)
    finally:
        api.headers.update(tenant.headers)
    first, second = await create_thread(api), await create_thread(api)
    await post_message(api, second["id"], "news")
    asked = [second["id"], theirs["id"], "not-an-id", first["id"], "01a25000-0000-7000-8000-000000000000"]
    async with sessionmaker() as session:
        rows = await inbox.inbox_rows(session, workspace_id=tenant.workspace_id, thread_ids=asked)
        assert [r.id for r in rows] == [second["id"], first["id"]]
        assert rows[0].last_message is not None and rows[0].last_message.excerpt == "news"
        assert await inbox.inbox_rows(session, workspace_id=tenant.workspace_id, thread_ids=[]) == []
