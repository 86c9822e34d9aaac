"""All SQL of workspaces: their per-workspace counters (``CounterRepository``), and the workspaces themselves,
which the operator sees across workspaces (the CLI, the first start)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.repository import WorkspaceRepository
from threadline.models import Message, Thread, Workspace, WorkspaceCounter

Numbered = type[Thread] | type[Message]

_LAST: dict[Any, Any] = {
    Thread: WorkspaceCounter.last_thread_number,
    Message: WorkspaceCounter.last_message_number,
}


class CounterRepository(WorkspaceRepository):
    """The workspace's row of ``workspace_counters``: the highest thread and message numbers handed out."""

    async def create(self) -> None:
        """The counters of a new workspace: its first thread and first message are number 1."""
        self.session.add(WorkspaceCounter(workspace_id=self.workspace_id, last_thread_number=0, last_message_number=0))
        await self.session.flush()

    async def advance(self, of: Numbered, by: int) -> int | None:
        """Hand out the next ``by`` numbers of ``of`` (threads or messages); returns the last of them, or
        None when this session does not see the workspace's counters (a workspace not committed yet)."""
        last = _LAST[of]
        stmt = (
            update(WorkspaceCounter)
            .where(WorkspaceCounter.workspace_id == self.workspace_id)
            .values({last.key: last + by})
            .returning(last)
        )
        taken: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return taken

    async def start(self, of: Numbered, by: int) -> int:
        """``advance``, creating the counters if the workspace has none, from the highest number its rows
        already have."""
        last = _LAST[of]
        values: dict[str, Any] = {"workspace_id": self.workspace_id}
        for model, column in _LAST.items():
            highest = select(func.coalesce(func.max(model.number), 0)).where(model.workspace_id == self.workspace_id)
            values[column.key] = highest.scalar_subquery() + (by if model is of else 0)
        insert = sqlite_insert if self.session.get_bind().dialect.name == "sqlite" else pg_insert
        stmt = (
            insert(WorkspaceCounter)
            .values(values)
            .on_conflict_do_update(index_elements=[WorkspaceCounter.workspace_id], set_={last.key: last + by})
            .returning(last)
        )
        taken: int = (await self.session.execute(stmt)).scalar_one()
        return taken


async def by_name(session: AsyncSession, name: str) -> Workspace | None:
    workspace: Workspace | None = (
        await session.execute(select(Workspace).where(Workspace.name == name))
    ).scalar_one_or_none()
    return workspace


async def all_workspaces(session: AsyncSession) -> list[Workspace]:
    return list((await session.execute(select(Workspace).order_by(Workspace.id))).scalars())


async def any_workspace(session: AsyncSession) -> bool:
    return (await session.execute(select(Workspace.id).limit(1))).first() is not None


async def advisory_lock(session: AsyncSession, key: int) -> None:
    """PostgreSQL's transaction-level advisory lock ``key``: held until the transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": key})
