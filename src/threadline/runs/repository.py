"""All SQL of runs, built with the workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, EndUser, Integration, Message, Run, RunStatus, Thread
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

    async def fresh(self, run_id: int) -> Run | None:
        """The run as committed now (not the copy a session holds from earlier)."""
        run = await self.session.get(Run, run_id, populate_existing=True)
        return run if run is not None and run.workspace_id == self.workspace_id else None

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


_OTHER_RUN = aliased(Run)  # module level: a new alias per call would defeat SQLAlchemy's statement cache
# Only what a run's context needs: whole rows would decode every JSON column of 200 messages.
_HISTORY_COLUMNS = (
    Message.id,
    Message.public_id,
    Message.seq,
    Message.role,
    Message.sent_by,
    Message.type,
    Message.content,
    Message.blocks,
    Message.metadata_.label("metadata"),
    Message.status,
    Message.tool_calls,
    Message.in_response_to_id,
)


class ExecutionRepository:
    """The SQL of executing runs (runs.runtime), for a worker that serves every workspace: each statement is
    addressed by the run's or the thread's own key, which a job names."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_row(self, run_public_id: uuid.UUID) -> Any | None:
        """(run, thread, version, end_user, channel type, agent public id) of the run, fresh from the database."""
        stmt = (
            select(Run, Thread, AgentVersion, EndUser, Integration.type, Agent.public_id)
            .join(Thread, Thread.id == Run.thread_id)
            .outerjoin(Agent, Agent.id == Thread.agent_id)
            .outerjoin(AgentVersion, AgentVersion.id == Run.agent_version_id)
            .join(EndUser, EndUser.id == Thread.end_user_id)
            .outerjoin(Integration, Integration.id == Thread.integration_id)
            .where(Run.public_id == run_public_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def mark_running(self, run: Run, *, now: datetime) -> Any | None:
        """Make ``run`` its thread's running run, counting an attempt, unless another run of the thread is
        running: (attempts, started_at, input_seq) as the claim left them, or None."""
        other = _OTHER_RUN
        stmt = (
            update(Run)
            .where(
                Run.id == run.id,
                Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
                ~exists().where(
                    other.thread_id == run.thread_id, other.status == RunStatus.RUNNING, other.id != run.id
                ),
            )
            .values(
                status=RunStatus.RUNNING,
                started_at=func.coalesce(Run.started_at, now),
                attempts=Run.attempts + 1,
                updated_at=now,
            )
            # input_seq as the claim found it: a message that joined the run after it was read (runs.service.
            # request_run) is answered too; none can join once it is running.
            .returning(Run.attempts, Run.started_at, Run.input_seq)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def history(self, thread_id: int, *, input_seq: int, limit: int) -> Sequence[Row[Any]]:
        """The thread's last ``limit`` messages up to ``input_seq``, and those after it that are not the end
        user's (replies of a run still running, operators' messages, notes), newest first."""
        stmt = (
            select(*_HISTORY_COLUMNS)
            .where(Message.thread_id == thread_id, or_(Message.seq <= input_seq, Message.role != Role.USER))
            .order_by(Message.seq.desc())
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def last_answered_seq(self, thread_id: int) -> int:
        """The last end-user message a completed run of the thread answered (0: none)."""
        stmt = select(func.max(Run.input_seq)).where(Run.thread_id == thread_id, Run.status == RunStatus.COMPLETED)
        return int((await self.session.execute(stmt)).scalar_one_or_none() or 0)

    async def requeue(self, run_id: int, *, now: datetime) -> None:
        """A running run waits as ``queued`` again (its attempt failed and will be retried)."""
        await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.RUNNING)
            .values(
                status=RunStatus.QUEUED,
                run_at=now,
                updated_at=now,
                attempts=case((Run.attempts == 0, 1), else_=Run.attempts),  # a run its request started
            )
        )

    async def lock(self, thread_id: int, run_id: int) -> tuple[Thread, Run | None]:
        """The thread, row-locked until commit (an operator taking over waits for us, or we see them), and the run."""
        stmt = select(Thread).where(Thread.id == thread_id).with_for_update().execution_options(populate_existing=True)
        thread = (await self.session.execute(stmt)).scalar_one()
        run = await self.session.get(Run, run_id, populate_existing=True)
        return thread, run

    async def next_queued(self, thread_id: int) -> Run | None:
        """The thread's queued run, if any (the one that answers what came while a run ran)."""
        stmt = select(Run).where(Run.thread_id == thread_id, Run.status == RunStatus.QUEUED).order_by(Run.id).limit(1)
        run: Run | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return run
