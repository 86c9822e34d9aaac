"""The worker in this process, on the test database: success, retries, unknown kinds, graceful stop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.jobs.registry import JobContext, TaskRegistry
from threadline.jobs.service import enqueue
from threadline.jobs.worker import Worker, WorkerOptions
from threadline.models import Workspace
from threadline.models.enums import JobState
from threadline.models.job import Job

Maker = async_sessionmaker[AsyncSession]


def _kind() -> str:
    return f"test.w.{uuid.uuid4().hex[:10]}"


def _worker(maker: Maker, tasks: TaskRegistry, *kinds: str, **options: Any) -> Worker:
    opts = {"concurrency": 4, "lease_s": 30, "poll_interval_s": 0.05, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}
    return Worker(maker, WorkerOptions(**{**opts, **options, "kinds": kinds}), tasks=tasks)


async def _until(check: Callable[[], Awaitable[bool]], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _jobs(maker: Maker, kind: str) -> list[Job]:
    async with maker() as s:
        return list((await s.scalars(select(Job).where(Job.kind == kind).order_by(Job.id))).all())


async def test_handler_effects_and_success_commit_together_and_enqueue_wakes_the_worker(
    sessionmaker: Maker, tenant: Any
) -> None:
    kind = _kind()
    tasks = TaskRegistry()
    seen: list[tuple[int, dict[str, Any]]] = []

    @tasks.task(kind)
    async def rename(ctx: JobContext, payload: dict[str, Any]) -> None:
        ws = await ctx.session.get(Workspace, payload["workspace_id"])
        assert ws is not None
        ws.name = payload["name"]
        seen.append((ctx.attempt, payload))

    worker = _worker(sessionmaker, tasks, kind, poll_interval_s=30)  # only a wake-up can start it quickly
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    new_name = f"renamed-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    async with sessionmaker() as s, s.begin():
        await enqueue(s, kind=kind, payload={"workspace_id": tenant.workspace_id, "name": new_name})

    async def done() -> bool:
        return [j.state for j in await _jobs(sessionmaker, kind)] == [JobState.SUCCEEDED]

    await _until(done, within_s=10)
    assert time.monotonic() - started < 5
    worker.stop()
    await asyncio.wait_for(runner, 10)
    async with sessionmaker() as s:
        assert (await s.get(Workspace, tenant.workspace_id)).name == new_name  # type: ignore[union-attr]
    assert seen and seen[0][0] == 1


async def test_a_failing_handler_is_retried_and_its_effects_roll_back_then_it_dies_keeping_the_error(
    sessionmaker: Maker, tenant: Any
) -> None:
    kind, flaky_kind = _kind(), _kind()
    tasks = TaskRegistry()
    calls: list[int] = []

    @tasks.task(kind)
    async def always_fails(ctx: JobContext, payload: dict[str, Any]) -> None:
        ws = await ctx.session.get(Workspace, tenant.workspace_id)
        assert ws is not None
        ws.name = "must-not-stick"
        calls.append(ctx.attempt)
        raise ValueError(f"attempt {ctx.attempt} broke")

    @tasks.task(flaky_kind)
    async def fails_once(ctx: JobContext, payload: dict[str, Any]) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("transient")

    worker = _worker(sessionmaker, tasks, kind, flaky_kind)
    runner = asyncio.create_task(worker.run())
    async with sessionmaker() as s, s.begin():
        await enqueue(s, kind=kind, max_attempts=3)
        await enqueue(s, kind=flaky_kind, max_attempts=3)

    async def finished() -> bool:
        jobs = await _jobs(sessionmaker, kind) + await _jobs(sessionmaker, flaky_kind)
        return all(j.state in (JobState.DEAD, JobState.SUCCEEDED) for j in jobs)

    await _until(finished)
    worker.stop()
    await asyncio.wait_for(runner, 10)
    [dead] = await _jobs(sessionmaker, kind)
    assert dead.state == JobState.DEAD and dead.attempts == 3 and calls == [1, 2, 3]
    assert dead.last_error is not None and dead.last_error.startswith("ValueError: attempt 3 broke")
    [flaky] = await _jobs(sessionmaker, flaky_kind)
    assert flaky.state == JobState.SUCCEEDED and flaky.attempts == 2 and "transient" in (flaky.last_error or "")
    async with sessionmaker() as s:
        assert (await s.get(Workspace, tenant.workspace_id)).name != "must-not-stick"  # type: ignore[union-attr]


async def test_a_job_of_unknown_kind_goes_dead_with_a_clear_error(sessionmaker: Maker) -> None:
    kind = _kind()
    worker = _worker(sessionmaker, TaskRegistry(), kind)
    runner = asyncio.create_task(worker.run())
    async with sessionmaker() as s, s.begin():
        await enqueue(s, kind=kind)

    async def dead() -> bool:
        return [j.state for j in await _jobs(sessionmaker, kind)] == [JobState.DEAD]

    await _until(dead)
    worker.stop()
    await asyncio.wait_for(runner, 10)
    [job] = await _jobs(sessionmaker, kind)
    assert job.last_error == f"no handler registered for job kind '{kind}'"


async def test_graceful_stop_finishes_short_jobs_and_releases_long_ones(sessionmaker: Maker) -> None:
    short_kind, long_kind = _kind(), _kind()
    tasks = TaskRegistry()
    started = asyncio.Event()

    @tasks.task(short_kind)
    async def short(ctx: JobContext, payload: dict[str, Any]) -> None:
        await started.wait()
        await asyncio.sleep(0.2)

    @tasks.task(long_kind)
    async def long(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    async with sessionmaker() as s, s.begin():
        await enqueue(s, kind=short_kind)
        await enqueue(s, kind=long_kind)
    worker = _worker(sessionmaker, tasks, short_kind, long_kind, shutdown_timeout_s=1.0)
    runner = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(runner, 10)
    [short_job] = await _jobs(sessionmaker, short_kind)
    [long_job] = await _jobs(sessionmaker, long_kind)
    assert short_job.state == JobState.SUCCEEDED
    assert long_job.state == JobState.QUEUED and long_job.attempts == 0 and long_job.locked_by is None
    assert worker.stats["released"] == 1


async def test_outbound_jobs_have_slots_of_their_own_so_a_stuck_receiver_delays_nothing_else(
    sessionmaker: Maker, settings: Any
) -> None:
    from threadline.jobs.registry import OUTBOUND_POOL
    from threadline.jobs.worker import WorkerGroup

    slow, quick = _kind(), _kind()
    tasks = TaskRegistry()
    release = asyncio.Event()
    started: list[str] = []

    @tasks.task(slow, pool=OUTBOUND_POOL)
    async def stuck(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.append(slow)
        await release.wait()  # a receiver that does not answer

    @tasks.task(quick)
    async def fine(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.append(quick)

    tuned = settings.replace(worker_concurrency=2, worker_outbound_concurrency=2, worker_poll_interval_s=0.05)
    group = WorkerGroup.from_settings(sessionmaker, tuned, tasks=tasks)
    assert [w.options.kinds for w in group.workers] == [None, (slow,)]
    assert group.workers[0].options.exclude_kinds == (slow,)
    async with sessionmaker() as s, s.begin():
        for _ in range(6):  # more stuck jobs than there are slots in either pool
            await enqueue(s, kind=slow)
    runner = asyncio.create_task(group.run())
    try:
        await _until(lambda: _async(started.count(slow) == 2))
        async with sessionmaker() as s, s.begin():
            for _ in range(5):
                await enqueue(s, kind=quick)

        async def quick_done() -> bool:
            return [j.state for j in await _jobs(sessionmaker, quick)] == [JobState.SUCCEEDED] * 5

        await _until(quick_done, within_s=10)
        assert started.count(slow) == 2  # the outbound pool stays at its own size
    finally:
        release.set()
        group.stop()
        await asyncio.wait_for(runner, 20)


async def _async(value: bool) -> bool:
    return value


async def test_a_job_enqueued_for_adoption_is_born_leased_to_a_local_worker_and_starts_at_commit(
    sessionmaker: Maker,
) -> None:
    kind = _kind()
    tasks = TaskRegistry()
    ran: list[int] = []
    gate = asyncio.Event()

    @tasks.task(kind)
    async def handler(ctx: JobContext, payload: dict[str, Any]) -> None:
        ran.append(ctx.job_id)
        await gate.wait()

    worker = _worker(sessionmaker, tasks, kind, concurrency=2, poll_interval_s=60)  # no poll will find them
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    try:
        async with sessionmaker() as s, s.begin():
            first = await enqueue(s, kind=kind, adopt=True)
            assert (first.state, first.locked_by, first.attempts) == (JobState.RUNNING, worker.id, 1)
            assert worker._reserved == 1
        await _until(lambda: _async(ran == [first.id]), within_s=5)
        # A rolled-back transaction gives its reserved slot back, and leaves no job.
        try:
            async with sessionmaker() as s, s.begin():
                await enqueue(s, kind=kind, adopt=True)
                assert worker._reserved == 1
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
        assert worker._reserved == 0
        async with sessionmaker() as s, s.begin():
            async with s.begin_nested():
                second = await enqueue(s, kind=kind, adopt=True)
            # A released savepoint is not the commit: the job is not handed over (adopt() would have
            # released the reserved slot at once), since nothing is visible to the worker yet.
            assert worker._reserved == 1 and ran == [first.id]
        await _until(lambda: _async(ran == [first.id, second.id]), within_s=5)
        # Both slots are busy: the next one is queued as usual, for a claim to find.
        async with sessionmaker() as s, s.begin():
            third = await enqueue(s, kind=kind, adopt=True)
            assert third.state == JobState.QUEUED and third.locked_by is None
        gate.set()

        async def all_done() -> bool:
            return [j.state for j in await _jobs(sessionmaker, kind)] == [JobState.SUCCEEDED] * 3

        await _until(all_done, within_s=10)
        # A savepoint rolled back takes only its own jobs: the one adopted before it still starts at commit.
        async with sessionmaker() as s, s.begin():
            kept = await enqueue(s, kind=kind, adopt=True)
            try:
                async with s.begin_nested():
                    await enqueue(s, kind=kind, adopt=True)
                    assert worker._reserved == 2
                    raise RuntimeError("the inner change failed")
            except RuntimeError:
                pass
            assert worker._reserved == 1
        await _until(lambda: _async(ran[-1] == kept.id), within_s=5)
        assert worker._reserved == 0 and len(ran) == 4
    finally:
        gate.set()
        worker.stop()
        await asyncio.wait_for(runner, 10)
