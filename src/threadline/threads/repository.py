from __future__ import annotations

import dataclasses
import uuid
from typing import Any, TypeVar

from sqlalchemy import (
    Select,
    String,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import aliased, selectinload

from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, EndUser, Integration, Message, Tag, Thread, User
from threadline.models.enums import ChannelType, Direction, Role, SentBy
from threadline.models.thread import thread_activity, thread_assignees, thread_tags
from threadline.threads.schemas import ActivityKey, InboxView, ThreadFilters

AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


class ThreadRepository(WorkspaceRepository):
    def _with_labels(self) -> Select[Any]:
        return self.scoped(Thread).options(selectinload(Thread.tags), selectinload(Thread.assignees))

    async def get_thread(self, thread_id: str) -> Thread:
        uid = parse_uuid(thread_id)
        row = None
        if uid is not None:
            stmt = self._with_labels().where(Thread.public_id == uid)
            row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            from threadline.errors import NotFound

            raise NotFound(f"no thread with id '{thread_id}'")
        thread: Thread = row
        return thread

    async def thread_key(self, thread_id: str) -> int | None:
        """The integer id of the thread with this public id in this workspace, or None."""
        uid = parse_uuid(thread_id)
        if uid is None:
            return None
        stmt = select(Thread.id).where(Thread.workspace_id == self.workspace_id, Thread.public_id == uid)
        key: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return key

    async def key_by_number(self, number: int) -> int | None:
        """The thread of this workspace whose ``number`` (``ThreadRead.number``) is ``number``, if any."""
        if not 0 < number < 2**63:
            return None
        stmt = select(Thread.id).where(Thread.workspace_id == self.workspace_id, Thread.number == number)
        key: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return key

    async def lock_end_user(self, end_user_id: str) -> EndUser | None:
        """The end user, its row locked until the transaction ends (SELECT ... FOR NO KEY UPDATE on
        PostgreSQL; SQLite runs one writer at a time already): what serializes opening a thread for one end
        user, since two such locks on one row conflict.

        Not FOR UPDATE: that lock also blocks the foreign-key checks of the end user's threads (FOR KEY
        SHARE), which PostgreSQL runs when a transaction updates a thread row a second time. A run finishing
        holds its thread and updates it twice (the reply's message number, then its flow state) while an
        inbound message holding the end user waits for that thread: with FOR UPDATE, a deadlock.
        An end user being erased is None: PostgreSQL checks ``erased_at`` again on the row it waited for."""
        uid = parse_uuid(end_user_id)
        if uid is None:
            return None
        stmt = (
            self.scoped(EndUser)
            .where(EndUser.public_id == uid, EndUser.erased_at.is_(None))
            .with_for_update(key_share=True)
        )
        end_user: EndUser | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return end_user

    async def latest_between(self, agent_id: int, end_user_id: int) -> Thread | None:
        """The newest thread between this agent and this end user, if they have one."""
        stmt = (
            self.scoped(Thread)
            .where(Thread.agent_id == agent_id, Thread.end_user_id == end_user_id)
            .order_by(Thread.id.desc())
            .limit(1)
        )
        thread: Thread | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return thread

    async def with_parties(self, thread_key: int) -> tuple[Thread, Agent, EndUser, Integration | None] | None:
        """The thread (its tags and assignees loaded, every column re-read) with its agent, end user and
        integration: one joined query, plus one for the tags and one for the assignees."""
        stmt = (
            select(Thread, Agent, EndUser, Integration)
            .join(Agent, Agent.id == Thread.agent_id)
            .join(EndUser, EndUser.id == Thread.end_user_id)
            .outerjoin(Integration, Integration.id == Thread.integration_id)
            .where(Thread.workspace_id == self.workspace_id, Thread.id == thread_key)
            .options(selectinload(Thread.tags), selectinload(Thread.assignees))
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None:
            return None
        return row[0], row[1], row[2], row[3]

    async def page(self, page: PageRequest, filters: ThreadFilters) -> Page[Thread]:
        return await keyset_page(self.session, self.narrow(self._with_labels(), filters), Thread.id, page)

    def narrow(self, stmt: AnySelect, filters: ThreadFilters) -> AnySelect:
        """``stmt`` (over ``threads``) narrowed to ``filters`` (view ``mine`` is ``assigned_user_id``'s filter)."""
        f = filters
        # An id filter that names nothing here matches nothing (it never reveals other workspaces).
        for model, column, value in (
            (Agent, Thread.agent_id, f.agent_id),
            (EndUser, Thread.end_user_id, f.end_user_id),
        ):
            if value is not None:
                stmt = stmt.where(column == self._key_subquery(model, value))
        if f.active is not None:
            stmt = stmt.where(Thread.active == f.active)
        if f.blocked is not None:
            stmt = stmt.where(Thread.blocked == f.blocked)
        if f.tag_id is not None:
            tagged = select(thread_tags.c.thread_id).where(thread_tags.c.tag_id == self._key_subquery(Tag, f.tag_id))
            stmt = stmt.where(Thread.id.in_(tagged))
        if f.assigned_user_id is not None:
            stmt = stmt.where(self.assigned_to(f.assigned_user_id))
        if f.updated_since is not None:
            stmt = stmt.where(Thread.updated_at >= f.updated_since)
        if f.channel is not None:
            stmt = stmt.where(self.on_channel(f.channel))
        if f.view is InboxView.NEEDS_HUMAN:
            stmt = stmt.where(needs_human())
        elif f.view is InboxView.UNASSIGNED:
            stmt = stmt.where(~exists().where(thread_assignees.c.thread_id == Thread.id))
        return stmt

    def assigned_to(self, user_id: str) -> Any:
        """The threads assigned to this user. IN, not EXISTS: SQLite then reads the user's assignments through
        their index, instead of probing every thread's (counting one user's among 10,000 threads: 0.3 ms, not 8)."""
        assigned = select(thread_assignees.c.thread_id).where(
            thread_assignees.c.user_id == self._key_subquery(User, user_id)
        )
        return Thread.id.in_(assigned)

    def on_channel(self, channel: ChannelType) -> Any:
        """The threads on ``channel``: through an integration of that type, or (the plain API) through none."""
        of_type = select(Integration.id).where(
            Integration.workspace_id == self.workspace_id, Integration.type == channel
        )
        through = Thread.integration_id.in_(of_type)
        return or_(Thread.integration_id.is_(None), through) if channel is ChannelType.API else through

    def _key_subquery(self, model: Any, public_id: str) -> Any:
        uid = parse_uuid(public_id)
        if uid is None:
            return select(model.id).where(false()).scalar_subquery()
        return select(model.id).where(model.workspace_id == self.workspace_id, model.public_id == uid).scalar_subquery()

    async def references(self, threads: list[Thread]) -> dict[str, dict[int, Any]]:
        """Public ids of everything a page of threads points at, one query per table."""
        return {
            "agents": await self.public_ids(Agent, {t.agent_id for t in threads}),
            "agent_versions": await self.public_ids(
                AgentVersion, {t.agent_version_id for t in threads if t.agent_version_id is not None}
            ),
            "end_users": await self.public_ids(EndUser, {t.end_user_id for t in threads}),
            "integrations": await self.public_ids(
                Integration, {t.integration_id for t in threads if t.integration_id is not None}
            ),
        }

    async def touch(self, thread: Thread) -> None:
        await self.session.execute(update(Thread).where(Thread.id == thread.id).values(updated_at=utcnow()))

    async def delete_thread(self, thread: Thread) -> None:
        await self.session.execute(
            delete(Thread).where(Thread.id == thread.id, Thread.workspace_id == self.workspace_id)
        )

    async def with_agent(self, thread_uid: uuid.UUID) -> Any | None:
        """The thread's row joined to its agent and to the version it runs: the one the thread is pinned to,
        else the agent's current one (the ``version_*`` columns are NULL when there is neither). None when
        the thread is not in this workspace."""
        shown_version = func.coalesce(Thread.agent_version_id, Agent.current_version_id)
        stmt = (
            select(
                Thread.public_id.label("thread_public_id"),
                Agent.public_id.label("agent_public_id"),
                Agent.name.label("agent_name"),
                Agent.description.label("agent_description"),
                Agent.type.label("agent_type"),
                AgentVersion.public_id.label("version_public_id"),
                AgentVersion.number.label("version_number"),
                AgentVersion.name.label("version_name"),
                AgentVersion.mode.label("version_mode"),
                AgentVersion.temperature.label("temperature"),
                AgentVersion.max_tokens.label("max_tokens"),
                AgentVersion.sms_temperature.label("sms_temperature"),
                AgentVersion.sms_max_tokens.label("sms_max_tokens"),
                AgentVersion.discard_inbound.label("version_discard_inbound"),
            )
            .select_from(Thread)
            .join(Agent, (Agent.id == Thread.agent_id) & (Agent.workspace_id == self.workspace_id))
            .outerjoin(
                AgentVersion,
                (AgentVersion.id == shown_version) & (AgentVersion.workspace_id == self.workspace_id),
            )
            .where(Thread.workspace_id == self.workspace_id, Thread.public_id == thread_uid)
        )
        return (await self.session.execute(stmt)).one_or_none()


CONVERSATION = (Role.USER, Role.ASSISTANT)
UNREAD_CAP = 100


def last_said_by() -> Any:
    """Who wrote the thread's newest message of the conversation (the end user's, the agent's or an operator's
    words: not system notes, tool results or hidden messages); NULL when there is none. Correlated to
    ``threads``: one backward step on (thread_id, seq)."""
    said = (
        select(Message.sent_by)
        .where(Message.thread_id == Thread.id, Message.role.in_(CONVERSATION))
        .order_by(Message.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    return type_coerce(said, String())


def needs_human() -> Any:
    """Handed to a human (``active`` false) and not answered by one since: the conversation's newest message is
    not an operator's. An end user writing again after the operator's answer puts the thread back in the view."""
    return and_(~Thread.active, func.coalesce(last_said_by(), "") != SentBy.OPERATOR.value)


class InboxRepository(ThreadRepository):
    """The inbox's reads: threads by last activity, the views' counts, and the rows of a page."""

    async def activity_page(
        self, stmt: Select[*tuple[Any, ...]], page: PageRequest, *, rows: bool = False
    ) -> Page[Any]:
        """``stmt`` (over ``threads``, already narrowed) as a keyset page on (activity, number); ``page.after`` and
        ``page.before`` are ``ActivityKey``s. Written as ``activity <= t AND (activity < t OR number < n)``, not as
        a row comparison: SQLite seeks the index only on the former."""
        act = thread_activity
        after: ActivityKey | None = page.after
        before: ActivityKey | None = page.before
        if after is not None:
            stmt = stmt.where(act >= after.at, or_(act > after.at, Thread.number > after.number))
        if before is not None:
            stmt = stmt.where(act <= before.at, or_(act < before.at, Thread.number < before.number))
        ascending = after is not None or (before is None and page.order.value == "asc")
        keys = (act.asc(), Thread.number.asc()) if ascending else (act.desc(), Thread.number.desc())
        result = await self.session.execute(stmt.order_by(*keys).limit(page.limit + 1))
        items = list(result.all() if rows else result.scalars().all())
        has_more = len(items) > page.limit
        items = items[: page.limit]
        if ascending != (page.order.value == "asc"):
            items.reverse()
        return Page(items=items, has_more=has_more)

    async def threads_by_activity(self, page: PageRequest, filters: ThreadFilters) -> Page[Thread]:
        """Threads (tags and assignees loaded) in the inbox order."""
        return await self.activity_page(self.narrow(self._with_labels(), filters), page)

    async def keys_by_activity(self, page: PageRequest, filters: ThreadFilters) -> Page[Any]:
        """Rows (public_id, number, activity) in the inbox order: what ``rows`` then reads in full."""
        stmt = select(Thread.public_id, Thread.number, thread_activity.label("activity")).where(
            Thread.workspace_id == self.workspace_id
        )
        return await self.activity_page(self.narrow(stmt, filters), page, rows=True)

    async def counts(self, filters: ThreadFilters) -> dict[str, int | None]:
        """One statement: (all, needs_human, unassigned, mine) under ``filters``, its view left out and its
        ``assigned_user_id`` naming whose threads "mine" counts (None without it)."""
        base = dataclasses.replace(filters, assigned_user_id=None)

        def count(view: InboxView, *extra: Any) -> Any:
            stmt = select(func.count()).select_from(Thread).where(Thread.workspace_id == self.workspace_id, *extra)
            return self.narrow(stmt, dataclasses.replace(base, view=view)).scalar_subquery()

        columns = [
            count(InboxView.ALL).label("all"),
            count(InboxView.NEEDS_HUMAN).label("needs_human"),
            count(InboxView.UNASSIGNED).label("unassigned"),
        ]
        if filters.assigned_user_id is not None:
            columns.append(count(InboxView.ALL, self.assigned_to(filters.assigned_user_id)).label("mine"))
        row = (await self.session.execute(select(*columns))).one()
        return {"mine": None, **row._asdict()}

    async def rows(self, thread_ids: list[uuid.UUID]) -> tuple[list[Any], list[Any], list[Any]]:
        """What the inbox shows of these threads (public ids), in three statements whatever their number: the
        threads with their agent, end user, channel, newest message, unread count and handoff state; their tags
        and their assignees (by the thread's key, ``id`` of the first)."""
        if not thread_ids:
            return [], [], []
        threads = list(
            (await self.session.execute(_ROWS[0], {"workspace_id": self.workspace_id, "ids": thread_ids})).all()
        )
        params = {"workspace_id": self.workspace_id, "keys": [t.id for t in threads]}
        tags, users = [list((await self.session.execute(stmt, params)).all()) for stmt in _ROWS[1:]]
        return threads, tags, users


def _rows_statements() -> tuple[Select[*tuple[Any, ...]], ...]:
    """InboxRepository.rows's statements, built once: the page's thread keys and the workspace are parameters."""
    keys: Any = bindparam("keys", expanding=True)
    workspace: Any = bindparam("workspace_id")
    last = aliased(Message, name="last_message")
    unread = (
        select(func.count())
        .select_from(
            select(Message.id)
            .where(
                Message.thread_id == Thread.id,
                Message.read_at.is_(None),
                # Spelled out, not a parameter: only then may the database use the partial index of unread ones.
                Message.direction == literal_column(f"'{Direction.INBOUND.value}'"),
            )
            .correlate(Thread)
            .limit(UNREAD_CAP)
            .subquery()
        )
        .scalar_subquery()
    )
    threads = (
        select(
            Thread.id,
            Thread.public_id,
            Thread.number,
            Thread.active,
            Thread.blocked,
            thread_activity.label("activity"),
            Agent.public_id.label("agent_id"),
            Agent.name.label("agent_name"),
            EndUser.public_id.label("end_user_id"),
            EndUser.display_name,
            EndUser.channel.label("end_user_channel"),
            EndUser.address,
            Integration.type.label("channel"),
            last.public_id.label("last_id"),
            last.role.label("last_role"),
            last.sent_by.label("last_sent_by"),
            last.type.label("last_type"),
            func.substr(last.content, 1, 400).label("last_content"),
            last.created_at.label("last_created_at"),
            unread.label("unread"),
            needs_human().label("needs_human"),
        )
        .join(Agent, Agent.id == Thread.agent_id)
        .join(EndUser, EndUser.id == Thread.end_user_id)
        .outerjoin(Integration, Integration.id == Thread.integration_id)
        .outerjoin(last, and_(last.thread_id == Thread.id, last.seq == Thread.last_seq))
        .where(Thread.workspace_id == workspace, Thread.public_id.in_(bindparam("ids", expanding=True)))
    )
    tags = (
        select(thread_tags.c.thread_id, Tag.public_id, Tag.name, Tag.color)
        .join(Tag, Tag.id == thread_tags.c.tag_id)
        .where(thread_tags.c.thread_id.in_(keys), Tag.workspace_id == workspace)
        .order_by(Tag.name)
    )
    users = (
        select(thread_assignees.c.thread_id, User.public_id, User.email, User.first_name, User.last_name)
        .join(User, User.id == thread_assignees.c.user_id)
        .where(thread_assignees.c.thread_id.in_(keys), User.workspace_id == workspace)
        .order_by(User.id)
    )
    return threads, tags, users


_ROWS = _rows_statements()
