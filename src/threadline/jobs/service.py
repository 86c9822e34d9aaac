"""Enqueue jobs and manage them; services flush, the caller's transaction commits.

A job enqueued here is a row in the caller's transaction: it exists exactly when the change that wants
it commits, and a rollback drops it too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from threadline.db.engine import session_settings
from threadline.errors import InvalidRequest, NotFound
from threadline.jobs.repository import JobRepository
from threadline.kit.clock import ago, utcnow
from threadline.models.enums import JobState
from threadline.models.job import Job

DEFAULT_MAX_ATTEMPTS = 8
_ENQUEUED = "threadline.jobs.enqueued"
_NOTIFIED = "threadline.jobs.notified"
# Workers in other processes LISTEN here (PostgreSQL): a NOTIFY in the enqueuing transaction reaches them
# when it commits, so a job starts at once instead of at the next poll.
JOBS_CHANNEL = "threadline_jobs"

# Workers in this process, woken when a transaction that enqueued jobs commits (with the kinds enqueued).
_wakeups: set[Callable[[frozenset[str]], None]] = set()


class Adopter(Protocol):
    """A worker of this process that can take a job at birth (see ``enqueue(adopt=True)``)."""

    @property
    def id(self) -> str: ...

    @property
    def lease_s(self) -> float: ...

    def reserve(self, kind: str) -> bool: ...

    def adopt(self, job: Job) -> None: ...

    def unreserve(self) -> None: ...


_adopters: list[Adopter] = []
_ADOPTED = "threadline.jobs.adopted"


def add_adopter(worker: Adopter) -> None:
    _adopters.append(worker)


def remove_adopter(worker: Adopter) -> None:
    if worker in _adopters:
        _adopters.remove(worker)


def add_wakeup(callback: Callable[[frozenset[str]], None]) -> None:
    _wakeups.add(callback)


def remove_wakeup(callback: Callable[[frozenset[str]], None]) -> None:
    _wakeups.discard(callback)


@event.listens_for(Session, "after_commit")
def _wake_workers_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: its jobs start when the real transaction commits
    for worker, job, _where in session.info.pop(_ADOPTED, ()):
        worker.adopt(job)
    session.info.pop(_NOTIFIED, None)
    kinds = session.info.pop(_ENQUEUED, None)
    if kinds:
        for wake in list(_wakeups):
            wake(frozenset(kinds))


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    rolled_back = session.get_nested_transaction()  # None: the whole transaction
    if rolled_back is None:
        for worker, _job, _where in session.info.pop(_ADOPTED, ()):
            worker.unreserve()
        session.info.pop(_ENQUEUED, None)
        session.info.pop(_NOTIFIED, None)
        return
    # A savepoint rolled back: only the jobs adopted inside it are gone; those of the enclosing transaction
    # still start at its commit. A NOTIFY sent inside it is gone too, so the next enqueue sends one again
    # (the local wake-ups are kept: one too many is harmless).
    kept = []
    for worker, job, where in session.info.pop(_ADOPTED, ()):
        if _inside(where, rolled_back):
            worker.unreserve()
        else:
            kept.append((worker, job, where))
    if kept:
        session.info[_ADOPTED] = kept
    session.info.pop(_NOTIFIED, None)


def _inside(transaction: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    """Whether ``transaction`` is ``savepoint`` or was begun inside it."""
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    workspace_id: int | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    dedupe_key: str | None = None,
    adopt: bool = False,
) -> Job:
    """Add a job to the caller's transaction (flushed, not committed).

    With ``dedupe_key``, a second job of the same kind and key is not added: the existing one is returned.
    With ``adopt`` (a job someone waits for, due now), a worker of this process with a free slot takes it at
    birth: the row is written already leased to that worker, which starts it when the transaction commits,
    with no claim in between. Should this process die first, the lease lapses and any worker takes it.
    """
    if not kind:
        raise InvalidRequest("a job needs a kind", param="kind")
    if run_at is not None and run_at.tzinfo is None:
        raise InvalidRequest("run_at must be timezone-aware", param="run_at")
    now = utcnow()
    values: dict[str, Any] = {
        "kind": kind,
        "payload": payload or {},
        "workspace_id": workspace_id,
        "state": JobState.QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts if max_attempts is not None else session_settings(session).jobs.max_attempts,
        "run_at": run_at or now,
        "dedupe_key": dedupe_key,
        "created_at": now,
        "updated_at": now,
    }
    if values["max_attempts"] < 1:
        raise InvalidRequest("max_attempts must be at least 1", param="max_attempts")
    adopter = None
    if adopt and dedupe_key is None and values["run_at"] <= now:
        adopter = next((w for w in _adopters if w.reserve(kind)), None)
    if adopter is not None:
        values.update(
            state=JobState.RUNNING,
            attempts=1,
            locked_by=adopter.id,
            lease_expires_at=now + timedelta(seconds=adopter.lease_s),
        )
    if dedupe_key is not None:
        job = await JobRepository(session).insert_deduplicated({**values, "public_id": _new_public_id()})
    else:
        job = Job(**values)
        session.add(job)
        await session.flush()
    if adopter is not None:
        where = session.sync_session.get_nested_transaction()  # the savepoint it is adopted in, if any
        session.info.setdefault(_ADOPTED, []).append((adopter, job, where))
        return job
    await notify_workers(session, kind)
    return job


async def notify_workers(session: AsyncSession, kind: str) -> None:
    """Wake the workers (of every process) that take ``kind`` when this transaction commits."""
    session.info.setdefault(_ENQUEUED, set()).add(kind)
    if session.get_bind().dialect.name != "postgresql":
        return
    notified = session.info.setdefault(_NOTIFIED, set())
    if kind not in notified:
        notified.add(kind)
        await JobRepository(session).notify(JOBS_CHANNEL, kind)


def _new_public_id() -> uuid.UUID:
    from threadline.kit.ids import uuid7

    return uuid7()


async def list_jobs(session: AsyncSession, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
    return await JobRepository(session).list(state=state, limit=limit)


async def find_job(session: AsyncSession, *, job_id: str) -> Job | None:
    """A job by its public id (UUID) or its integer id."""
    repo = JobRepository(session)
    if job_id.isdigit():
        return await repo.find(int(job_id))
    try:
        uid = uuid.UUID(job_id)
    except ValueError:
        return None
    return await repo.find_public(uid)


async def retry_job(session: AsyncSession, *, job_id: str) -> Job:
    """Give a dead job a fresh set of attempts, due now."""
    job = await find_job(session, job_id=job_id)
    if job is None:
        raise NotFound(f"no job with id '{job_id}'")
    if job.state != JobState.DEAD:
        raise InvalidRequest(f"job {job_id} is {job.state}, not dead: only dead jobs can be retried")
    now = utcnow()
    job.state = JobState.QUEUED
    job.attempts = 0
    job.run_at = now
    job.finished_at = None
    job.updated_at = now
    await session.flush()
    await notify_workers(session, job.kind)
    return job


async def purge_jobs(session: AsyncSession, *, older_than: timedelta) -> int:
    """Delete succeeded and dead jobs that finished more than ``older_than`` ago."""
    return await JobRepository(session).purge_finished(before=ago(older_than))


async def count_jobs(session: AsyncSession) -> dict[JobState, int]:
    return await JobRepository(session).count_by_state()
