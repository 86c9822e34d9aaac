"""All SQL of runs, built with the workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, literal, select, update

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import AgentVersion, Message, Run, RunStatus, Thread
from threadline.models.enums import Role


class RunRepository(WorkspaceRepository):
    async def open_for_thread(self, thread_id: int) -> tuple[Run | None, bool]:
        """The thread's queued run (if any) and whether one of its runs is running, in one query."""
        stmt = (
            self.scoped(Run)
            .where(Run.thread_id == thread_id, Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
            .order_by(Run.id)
        )
        runs = list((await self.session.execute(stmt)).scalars())
        queued = next((r for r in runs if r.status is RunStatus.QUEUED), None)
        return queued, any(r.status is RunStatus.RUNNING for r in runs)

    async def join_queued(self, run_id: int, *, input_seq: int, run_at: datetime, now: datetime) -> Run | None:
        """Have the queued run ``run_id`` also answer up to ``input_seq``, starting no earlier than ``run_at``;
        the run as it is now, or None when it is no longer queued (a worker claimed it since it was read:
        its history is read already, so what it answers cannot grow).

        One guarded UPDATE: on PostgreSQL it waits for a claim in progress and then sees the claim's outcome."""
        stmt = (
            update(Run)
            .where(Run.id == run_id, Run.workspace_id == self.workspace_id, Run.status == RunStatus.QUEUED)
            .values(
                input_seq=case((Run.input_seq < input_seq, input_seq), else_=Run.input_seq),
                run_at=case((Run.run_at < run_at, literal(run_at, Run.run_at.type)), else_=Run.run_at),
                updated_at=now,
            )
            .returning(Run)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        run: Run | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return run

    async def replies(self, run_id: int) -> list[Message]:
        """What the run said to the end user: its assistant messages (never its notes for operators)."""
        stmt = (
            self.scoped(Message).where(Message.run_id == run_id, Message.role == Role.ASSISTANT).order_by(Message.seq)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def agent_of_thread(self, thread_id: int) -> int | None:
        stmt = select(Thread.agent_id).where(Thread.id == thread_id, Thread.workspace_id == self.workspace_id)
        agent_id: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return agent_id

    async def save_checkpoint(self, run_id: int, checkpoint: dict[str, Any]) -> None:
        """Record the tool loop's progress on a run that is still running (runs.checkpoint)."""
        await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.workspace_id == self.workspace_id, Run.status == RunStatus.RUNNING)
            .values(checkpoint=checkpoint)
            .execution_options(synchronize_session=False)
        )

    async def page(self, thread_id: int, page: PageRequest) -> Page[Run]:
        return await keyset_page(self.session, self.scoped(Run).where(Run.thread_id == thread_id), Run.id, page)

    async def references(self, runs: list[Run]) -> dict[str, dict[int, Any]]:
        return {
            "threads": await self.public_ids(Thread, {r.thread_id for r in runs}),
            "agent_versions": await self.public_ids(
                AgentVersion, {r.agent_version_id for r in runs if r.agent_version_id is not None}
            ),
            "messages": await self.public_ids(
                Message, {r.trigger_message_id for r in runs if r.trigger_message_id is not None}
            ),
        }
