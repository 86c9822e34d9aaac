"""The queue through the database (SQLite and PostgreSQL): enqueue, claim, complete, fail, lease, release."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.jobs.backoff import backoff_ceiling, backoff_delay
from threadline.jobs.repository import JobRepository
from threadline.jobs.service import enqueue, purge_jobs, retry_job
from threadline.kit.clock import utcnow
from threadline.models.enums import JobState
from threadline.models.job import Job

Maker = async_sessionmaker[AsyncSession]


def _kind() -> str:
    return f"test.q.{uuid.uuid4().hex[:10]}"


async def _claim(maker: Maker, kind: str, worker: str = "w1", *, limit: int = 10, lease_s: float = 30, now=None):  # type: ignore[no-untyped-def]
    async with maker() as s, s.begin():
        return await JobRepository(s).claim(
            worker_id=worker, limit=limit, now=now or utcnow(), lease_s=lease_s, kinds=[kind]
        )


async def _get(maker: Maker, job_id: int) -> Job:
    async with maker() as s:
        job = (await s.execute(select(Job).where(Job.id == job_id))).scalar_one()
        return job


async def test_enqueue_joins_the_callers_transaction(sessionmaker: Maker, tenant) -> None:  # type: ignore[no-untyped-def]
    kind = _kind()
    async with sessionmaker() as s:
        async with s.begin():
            kept_id = (await enqueue(s, kind=kind, payload={"n": 1}, workspace_id=tenant.workspace_id)).id
        try:
            async with s.begin():
                await enqueue(s, kind=kind, payload={"n": 2})
                raise RuntimeError("the change that wanted the job failed")
        except RuntimeError:
            pass
    async with sessionmaker() as s:
        jobs = (await s.scalars(select(Job).where(Job.kind == kind))).all()
    assert [j.id for j in jobs] == [kept_id]
    assert jobs[0].state == JobState.QUEUED and jobs[0].attempts == 0 and jobs[0].payload == {"n": 1}
    assert jobs[0].run_at.tzinfo is not None and jobs[0].workspace_id == tenant.workspace_id


async def test_claim_leases_due_jobs_in_run_at_order_and_complete_marks_succeeded(sessionmaker: Maker) -> None:
    kind = _kind()
    now = utcnow()
    async with sessionmaker() as s, s.begin():
        later = await enqueue(s, kind=kind, run_at=now + timedelta(hours=1))
        second = await enqueue(s, kind=kind, run_at=now - timedelta(seconds=1))
        first = await enqueue(s, kind=kind, run_at=now - timedelta(seconds=2))
    claimed = await _claim(sessionmaker, kind, limit=10, lease_s=30)
    assert [j.id for j in claimed] == [first.id, second.id]  # the future one is not due
    for job in claimed:
        assert job.state == JobState.RUNNING and job.locked_by == "w1" and job.attempts == 1
        assert job.lease_expires_at is not None and job.lease_expires_at > utcnow() + timedelta(seconds=25)
    assert await _claim(sessionmaker, kind, "w2") == []  # leased: nobody else gets them

    async with sessionmaker() as s, s.begin():
        assert await JobRepository(s).complete(job_id=first.id, worker_id="w2", now=utcnow()) is False
        assert await JobRepository(s).complete(job_id=first.id, worker_id="w1", now=utcnow()) is True
    done = await _get(sessionmaker, first.id)
    assert done.state == JobState.SUCCEEDED and done.finished_at is not None and done.locked_by is None
    assert (await _get(sessionmaker, later.id)).state == JobState.QUEUED


async def test_claim_respects_the_limit(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        for _ in range(5):
            await enqueue(s, kind=kind)
    assert len(await _claim(sessionmaker, kind, limit=3)) == 3
    assert len(await _claim(sessionmaker, kind, "w2", limit=3)) == 2
    assert await _claim(sessionmaker, kind, "w3", limit=3) == []


def test_backoff_is_exponential_capped_with_full_jitter() -> None:
    assert [backoff_ceiling(a, base_s=2, cap_s=100) for a in (1, 2, 3, 4, 5, 6, 7, 100)] == [
        2,
        4,
        8,
        16,
        32,
        64,
        100,
        100,
    ]
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = backoff_ceiling(attempt, base_s=1, cap_s=60)
        delays = [backoff_delay(attempt, base_s=1, cap_s=60, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the whole range


async def test_failure_requeues_with_backoff_then_dead_after_max_attempts_keeps_last_error(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        job = await enqueue(s, kind=kind, max_attempts=2)
    assert len(await _claim(sessionmaker, kind)) == 1
    now = utcnow()
    async with sessionmaker() as s, s.begin():
        state = await JobRepository(s).fail(
            job_id=job.id, worker_id="w1", error="boom 1", now=now, retry_at=now + timedelta(seconds=30)
        )
    assert state == JobState.QUEUED
    row = await _get(sessionmaker, job.id)
    assert row.state == JobState.QUEUED and row.attempts == 1 and row.last_error == "boom 1"
    assert row.run_at >= now + timedelta(seconds=29) and row.locked_by is None
    assert await _claim(sessionmaker, kind) == []  # not due before the retry time

    [again] = await _claim(sessionmaker, kind, now=utcnow() + timedelta(seconds=31))
    assert again.attempts == 2
    async with sessionmaker() as s, s.begin():
        state = await JobRepository(s).fail(
            job_id=job.id, worker_id="w1", error="boom 2", now=utcnow(), retry_at=utcnow() + timedelta(seconds=30)
        )
    assert state == JobState.DEAD
    dead = await _get(sessionmaker, job.id)
    assert dead.state == JobState.DEAD and dead.last_error == "boom 2" and dead.finished_at is not None
    assert await _claim(sessionmaker, kind, now=utcnow() + timedelta(days=1)) == []

    async with sessionmaker() as s, s.begin():
        await retry_job(s, job_id=str(job.public_id))
    revived = await _get(sessionmaker, job.id)
    assert revived.state == JobState.QUEUED and revived.attempts == 0 and revived.last_error == "boom 2"


async def test_an_expired_lease_makes_a_crashed_workers_job_claimable_again(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        job = await enqueue(s, kind=kind, max_attempts=2)
    await _claim(sessionmaker, kind, "crashed", lease_s=5)
    assert await _claim(sessionmaker, kind, "w2") == []
    [taken] = await _claim(sessionmaker, kind, "w2", now=utcnow() + timedelta(seconds=6))
    assert taken.id == job.id and taken.locked_by == "w2" and taken.attempts == 2
    # The crashed worker, back from the dead, can no longer complete or fail it.
    async with sessionmaker() as s, s.begin():
        assert await JobRepository(s).complete(job_id=job.id, worker_id="crashed", now=utcnow()) is False
    # A lapse on the last attempt is not run again: dead, saying why.
    assert await _claim(sessionmaker, kind, "w3", now=utcnow() + timedelta(minutes=2)) == []
    dead = await _get(sessionmaker, job.id)
    assert dead.state == JobState.DEAD and "lease expired" in (dead.last_error or "")


async def test_heartbeat_renews_only_the_workers_own_leases(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        job = await enqueue(s, kind=kind)
    await _claim(sessionmaker, kind, "w1", lease_s=5)
    async with sessionmaker() as s, s.begin():
        assert await JobRepository(s).renew(job_ids=[job.id], worker_id="w2", now=utcnow(), lease_s=60) == 0
        assert await JobRepository(s).renew(job_ids=[job.id], worker_id="w1", now=utcnow(), lease_s=60) == 1
    assert await _claim(sessionmaker, kind, "w2", now=utcnow() + timedelta(seconds=10)) == []


async def test_release_requeues_without_counting_the_attempt(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        job = await enqueue(s, kind=kind)
    await _claim(sessionmaker, kind, "w1")
    async with sessionmaker() as s, s.begin():
        assert await JobRepository(s).release(job_ids=[job.id], worker_id="w1", now=utcnow()) == 1
    row = await _get(sessionmaker, job.id)
    assert row.state == JobState.QUEUED and row.attempts == 0 and row.locked_by is None
    [again] = await _claim(sessionmaker, kind, "w2")
    assert again.attempts == 1


async def test_dedupe_key_keeps_one_job_per_kind_and_key(sessionmaker: Maker) -> None:
    kind, other = _kind(), _kind()
    async with sessionmaker() as s, s.begin():
        a = await enqueue(s, kind=kind, payload={"v": 1}, dedupe_key="k1")
    async with sessionmaker() as s, s.begin():
        b = await enqueue(s, kind=kind, payload={"v": 2}, dedupe_key="k1")
        c = await enqueue(s, kind=other, dedupe_key="k1")
        d = await enqueue(s, kind=kind, dedupe_key="k2")
        e = await enqueue(s, kind=kind)
        f = await enqueue(s, kind=kind)
    assert b.id == a.id and b.payload == {"v": 1}
    assert len({a.id, c.id, d.id, e.id, f.id}) == 5


async def test_purge_deletes_only_old_finished_jobs(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        jobs = [await enqueue(s, kind=kind) for _ in range(3)]
        for job, state, age in zip(
            jobs, [JobState.SUCCEEDED, JobState.DEAD, JobState.QUEUED], [10, 1, 30], strict=True
        ):
            job.state = state
            job.finished_at = utcnow() - timedelta(days=age) if state != JobState.QUEUED else None
    async with sessionmaker() as s, s.begin():
        assert await purge_jobs(s, older_than=timedelta(days=5)) >= 1
    async with sessionmaker() as s:
        left = {j.id for j in (await s.scalars(select(Job).where(Job.kind == kind))).all()}
    assert left == {jobs[1].id, jobs[2].id}


async def test_purging_older_than_datetime_reaches_purges_nothing_and_does_not_fail(sessionmaker: Maker) -> None:
    kind = _kind()
    async with sessionmaker() as s, s.begin():
        job = await enqueue(s, kind=kind)
        job.state = JobState.DEAD
        job.finished_at = datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)  # the oldest a datetime holds, bar a second
    for older_than in (timedelta(days=800_000), timedelta.max):  # past year 1: held there, no OverflowError
        async with sessionmaker() as s, s.begin():
            await purge_jobs(s, older_than=older_than)
    async with sessionmaker() as s:
        assert [j.id for j in (await s.scalars(select(Job).where(Job.kind == kind))).all()] == [job.id]
