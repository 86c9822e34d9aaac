"""All SQL of runs, built with the workspace."""

from __future__ import annotations

from typing import Any

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import AgentVersion, Message, Run, RunStatus, Thread


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

    async def replies(self, run_id: int) -> list[Message]:
        stmt = self.scoped(Message).where(Message.run_id == run_id, Message.role != "hidden").order_by(Message.seq)
        return list((await self.session.execute(stmt)).scalars().all())

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
