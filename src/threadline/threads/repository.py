from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, exists, false, select, update
from sqlalchemy.orm import selectinload

from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, EndUser, Integration, Tag, Thread, User
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
