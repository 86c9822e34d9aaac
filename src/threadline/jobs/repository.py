"""All SQL of the job queue.

Jobs are the system's work, not a tenant's view: a worker claims across every workspace, so this
repository is not built with a workspace id (``Job.workspace_id`` only says whose work it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.models.enums import JobState
from threadline.models.job import Job

_ERROR_MAX_CHARS = 8000


def _clip(error: str) -> str:
    return error if len(error) <= _ERROR_MAX_CHARS else error[: _ERROR_MAX_CHARS - 3] + "..."


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------------------------------ enqueue

    async def insert_deduplicated(self, values: dict[str, Any]) -> Job:
        """Insert unless a job of the same kind has the same dedupe key; either way return that job.

        ON CONFLICT DO NOTHING rather than check-then-insert: two transactions enqueueing the same key
        at once end with one row, the second waiting for the first to commit.
        """
        insert = sqlite_insert if self._sqlite else pg_insert
        stmt = (
            insert(Job)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Job.kind, Job.dedupe_key])
            .returning(Job.id)
        )
        new_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if new_id is not None:
            job = await self.session.get(Job, new_id)
        else:
            job = await self.session.scalar(
                select(Job).where(Job.kind == values["kind"], Job.dedupe_key == values["dedupe_key"])
            )
        assert job is not None
        return job

    async def notify(self, channel: str, payload: str) -> None:
        """``NOTIFY channel, payload`` in this transaction (PostgreSQL delivers it at commit)."""
        await self.session.execute(select(func.pg_notify(channel, payload)))

    # ------------------------------------------------------------------------------------ workers

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        now: datetime,
        lease_s: float,
        kinds: Sequence[str] | None = None,
        exclude_kinds: Sequence[str] | None = None,
        bury_lapsed: bool = True,
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs to ``worker_id``: queued ones whose time has come, and running
        ones whose lease lapsed (their worker died). Each claim counts as an attempt. ``bury_lapsed``: first
        mark dead the lapsed jobs that were on their last attempt (workers do it now and then, not on every
        claim: such a job is never claimed again either way).

        On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers claim side by side without waiting for or
        taking each other's rows; on SQLite the caller's BEGIN IMMEDIATE makes the claim the only writer.
        """
        lapsed = and_(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
        if kinds is not None:
            lapsed = and_(lapsed, Job.kind.in_(list(kinds)))
        if exclude_kinds:
            lapsed = and_(lapsed, Job.kind.not_in(list(exclude_kinds)))
        if bury_lapsed:
            await self._bury_lapsed(lapsed, now)
        # A lapsed job on its last attempt is not run again: its worker died on it every time.
        due = or_(and_(Job.state == JobState.QUEUED, Job.run_at <= now), and_(lapsed, Job.attempts < Job.max_attempts))
        if kinds is not None:
            due = and_(due, Job.kind.in_(list(kinds)))
        if exclude_kinds:
            due = and_(due, Job.kind.not_in(list(exclude_kinds)))
        return await self._lease(due, worker_id=worker_id, limit=limit, now=now, lease_s=lease_s)

    async def _bury_lapsed(self, lapsed: Any, now: datetime) -> None:
        await self.session.execute(
            update(Job)
            .where(lapsed, Job.attempts >= Job.max_attempts)
            .values(
                state=JobState.DEAD,
                finished_at=now,
                updated_at=now,
                locked_by=None,
                lease_expires_at=None,
                last_error=func.coalesce(Job.last_error + "\n", "") + "lease expired on the last attempt",
            )
            .execution_options(synchronize_session=False)
        )

    async def _lease(self, due: Any, *, worker_id: str, limit: int, now: datetime, lease_s: float) -> list[Job]:
        ids = list(
            (
                await self.session.scalars(
                    select(Job.id).where(due).order_by(Job.run_at).limit(limit).with_for_update(skip_locked=True)
                )
            ).all()
        )
        if not ids:
            return []
        stmt = (
            update(Job)
            .where(Job.id.in_(ids))
            .values(
                state=JobState.RUNNING,
                locked_by=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .returning(Job)
            .execution_options(populate_existing=True)
        )
        jobs = list((await self.session.scalars(stmt)).all())
        jobs.sort(key=lambda j: j.run_at)
        return jobs

    def _held(self, job_id: int, worker_id: str) -> Any:
        return and_(Job.id == job_id, Job.locked_by == worker_id, Job.state == JobState.RUNNING)

    async def complete(self, *, job_id: int, worker_id: str, now: datetime) -> bool:
        """Mark a job this worker holds as succeeded; False when the lease was lost to another worker."""
        result = await self.session.execute(
            update(Job)
            .where(self._held(job_id, worker_id))
            .values(state=JobState.SUCCEEDED, finished_at=now, updated_at=now, locked_by=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def fail(
        self, *, job_id: int, worker_id: str, error: str, now: datetime, retry_at: datetime
    ) -> JobState | None:
        """Record a failed attempt: queued again for ``retry_at``, or dead if it was the last attempt.

        Returns the new state, or None when this worker no longer holds the job.
        """
        job = await self.session.scalar(
            select(Job).where(self._held(job_id, worker_id)).with_for_update().execution_options(populate_existing=True)
        )
        if job is None:
            return None
        job.last_error = _clip(error)
        job.locked_by = None
        job.lease_expires_at = None
        job.updated_at = now
        if job.attempts >= job.max_attempts:
            job.state = JobState.DEAD
            job.finished_at = now
        else:
            job.state = JobState.QUEUED
            job.run_at = retry_at
        await self.session.flush()
        return job.state

    async def bury(self, *, job_id: int, worker_id: str, error: str, now: datetime) -> bool:
        """Mark a job dead at once (it can never succeed, e.g. no handler for its kind)."""
        result = await self.session.execute(
            update(Job)
            .where(self._held(job_id, worker_id))
            .values(
                state=JobState.DEAD,
                last_error=_clip(error),
                finished_at=now,
                updated_at=now,
                locked_by=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def reschedule(self, *, job_id: int, worker_id: str, now: datetime, run_at: datetime) -> bool:
        """Put a job this worker holds back in the queue for ``run_at``, the attempt not counted: it did
        not fail, it is not its turn yet (e.g. another run of the same thread is still going)."""
        result = await self.session.execute(
            update(Job)
            .where(self._held(job_id, worker_id))
            .values(
                state=JobState.QUEUED,
                run_at=run_at,
                attempts=func.max(Job.attempts - 1, 0) if self._sqlite else func.greatest(Job.attempts - 1, 0),
                locked_by=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def postpone(self, *, job_id: int, run_at: datetime, now: datetime) -> bool:
        """Move a queued job's start later (a debounce window sliding)."""
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED)
            .values(run_at=run_at, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def wake(
        self, *, now: datetime, job_id: int | None = None, dedupe_key: tuple[str, str] | None = None
    ) -> bool:
        """Make a queued job due now (it was waiting for something that has just happened); the job named by
        its id, or by its kind and dedupe key."""
        if job_id is not None:
            named = Job.id == job_id
        elif dedupe_key is not None:
            named = and_(Job.kind == dedupe_key[0], Job.dedupe_key == dedupe_key[1])
        else:
            raise ValueError("wake: give job_id or dedupe_key")
        result = await self.session.execute(
            update(Job)
            .where(named, Job.state == JobState.QUEUED, Job.run_at > now)
            .values(run_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew(self, *, job_ids: Sequence[int], worker_id: str, now: datetime, lease_s: float) -> int:
        """Extend the leases this worker still holds on ``job_ids``."""
        if not job_ids:
            return 0
        result = await self.session.execute(
            update(Job)
            .where(Job.id.in_(list(job_ids)), Job.locked_by == worker_id, Job.state == JobState.RUNNING)
            .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, *, job_ids: Sequence[int], worker_id: str, now: datetime) -> int:
        """Hand unfinished jobs back on shutdown: queued, due now, and the interrupted attempt not counted."""
        if not job_ids:
            return 0
        result = await self.session.execute(
            update(Job)
            .where(Job.id.in_(list(job_ids)), Job.locked_by == worker_id, Job.state == JobState.RUNNING)
            .values(
                state=JobState.QUEUED,
                run_at=now,
                attempts=func.max(Job.attempts - 1, 0) if self._sqlite else func.greatest(Job.attempts - 1, 0),
                locked_by=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    @property
    def _sqlite(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    # ------------------------------------------------------------------------------------ operators

    async def list(self, *, state: JobState | None, limit: int) -> list[Job]:
        stmt = select(Job).order_by(Job.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(Job.state == state)
        return list((await self.session.scalars(stmt)).all())

    async def find(self, job_id: int) -> Job | None:
        return await self.session.get(Job, job_id)

    async def find_public(self, public_id: Any) -> Job | None:
        return await self.session.scalar(select(Job).where(Job.public_id == public_id))

    async def count_by_state(self) -> dict[JobState, int]:
        rows = await self.session.execute(select(Job.state, func.count()).group_by(Job.state))
        return {JobState(state): int(n) for state, n in rows.all()}

    async def purge_finished(self, *, before: datetime) -> int:
        result = await self.session.execute(
            delete(Job)
            .where(Job.state.in_([JobState.SUCCEEDED, JobState.DEAD]), Job.finished_at < before)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
