from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, delete, exists, false, func, select, update
from sqlalchemy.orm import selectinload

from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, EndUser, Integration, Message, Tag, Thread, User
from threadline.models.enums import MessageStatus, SentBy
from threadline.models.thread import thread_assignees, thread_tags
from threadline.threads.schemas import ThreadFilters


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
        stmt = self._with_labels()
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
            stmt = stmt.where(
                exists().where(
                    thread_tags.c.thread_id == Thread.id,
                    thread_tags.c.tag_id == self._key_subquery(Tag, f.tag_id),
                )
            )
        if f.assigned_user_id is not None:
            stmt = stmt.where(
                exists().where(
                    thread_assignees.c.thread_id == Thread.id,
                    thread_assignees.c.user_id == self._key_subquery(User, f.assigned_user_id),
                )
            )
        if f.updated_since is not None:
            stmt = stmt.where(Thread.updated_at >= f.updated_since)
        return await keyset_page(self.session, stmt, Thread.id, page)

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

    async def agent_messages_waiting(self, thread_key: int) -> list[int]:
        """The agent's messages of the thread still waiting to be sent on their channel (QUEUED)."""
        stmt = select(Message.id).where(
            Message.workspace_id == self.workspace_id,
            Message.thread_id == thread_key,
            Message.status == MessageStatus.QUEUED,
            Message.sent_by == SentBy.AGENT,
        )
        return list((await self.session.execute(stmt)).scalars())
