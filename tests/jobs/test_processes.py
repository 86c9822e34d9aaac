"""Jobs through real processes: two `threadline worker`s on PostgreSQL with one killed -9, the embedded
worker of `threadline serve` on SQLite, and the `threadline jobs` commands."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.cli.test_cli import run_cli
from tests.jobs.effects_tasks import EFFECT_KIND, create_effects_table
from tests.livesrv import free_port
from threadline.config import Settings
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.jobs.service import enqueue
from threadline.kit.clock import utcnow
from threadline.models.enums import JobState
from threadline.models.job import Job

ROOT = Path(__file__).resolve().parents[2]
Maker = async_sessionmaker[AsyncSession]


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env.update(
        THREADLINE_DATABASE_URL=database_url,
        THREADLINE_LOG_LEVEL="warning",
        THREADLINE_TASK_MODULES="tests.jobs.effects_tasks",
        **extra,
    )
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "threadline.cli", *args],
        cwd=ROOT,  # `-m` puts the cwd on sys.path, so tests.jobs.effects_tasks imports
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until(check: Callable[[], Awaitable[bool]], within_s: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        await asyncio.sleep(0.1)


async def _states(maker: Maker, kind: str) -> dict[JobState, int]:
    async with maker() as s:
        rows = await s.execute(select(Job.state, func.count()).where(Job.kind == kind).group_by(Job.state))
        return {JobState(state): n for state, n in rows.all()}


@pytest.fixture
async def effects_engine(engine: AsyncEngine) -> AsyncEngine:
    async with write_engine(engine).begin() as conn:
        await create_effects_table(conn)
        await conn.execute(text("DELETE FROM job_effects"))
    async with create_sessionmaker(write_engine(engine), Settings())() as s, s.begin():
        await s.execute(Job.__table__.delete().where(Job.kind == EFFECT_KIND))
    return engine


@pytest.mark.postgres_only
@pytest.mark.slow
async def test_two_workers_one_killed_minus_9_every_job_succeeds_with_its_effect_exactly_once(
    effects_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    total = 500
    maker = create_sessionmaker(write_engine(effects_engine), Settings())
    async with maker() as s, s.begin():
        for _ in range(total):
            await enqueue(s, kind=EFFECT_KIND, payload={"sleep_s": 0.03}, max_attempts=5)

    env = _env(database_url, THREADLINE_JOB_LEASE_S="2", THREADLINE_WORKER_POLL_INTERVAL_S="0.2")
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    args = ["worker", "--concurrency", "4", "--kind", EFFECT_KIND]
    victim = _start(args, env, logs[0])
    survivor = _start(args, env, logs[1])
    try:
        # Kill the victim after some jobs are done, while it holds claimed jobs.
        async def victim_busy() -> bool:
            assert victim.poll() is None, "worker exited early"
            counts = await _states(maker, EFFECT_KIND)
            async with maker() as s:
                held = await s.scalar(
                    select(func.count()).where(
                        Job.kind == EFFECT_KIND,
                        Job.state == JobState.RUNNING,
                        Job.locked_by.like(f"%-{victim.pid}-%"),
                    )
                )
            return counts.get(JobState.SUCCEEDED, 0) >= 50 and bool(held)

        await _until(victim_busy, 120, "the victim to be mid-way", logs)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        async with maker() as s:
            orphaned = set(
                (
                    await s.scalars(
                        select(Job.id).where(
                            Job.kind == EFFECT_KIND,
                            Job.state == JobState.RUNNING,
                            Job.locked_by.like(f"%-{victim.pid}-%"),
                        )
                    )
                ).all()
            )
        assert orphaned, "the victim held no jobs when it was killed"
        assert (await _states(maker, EFFECT_KIND)).get(JobState.SUCCEEDED, 0) < total

        async def all_done() -> bool:
            assert survivor.poll() is None, "surviving worker exited"
            return (await _states(maker, EFFECT_KIND)).get(JobState.SUCCEEDED, 0) == total

        await _until(all_done, 60, "every job to succeed", logs)
    finally:
        _stop(survivor)
        if victim.poll() is None:
            victim.kill()
            victim.wait()

    assert survivor.returncode == 0, logs[1].read_text()[-3000:]
    async with maker() as s:
        job_ids = set((await s.scalars(select(Job.id).where(Job.kind == EFFECT_KIND))).all())
        effects = list((await s.execute(text("SELECT job_id, worker_id FROM job_effects"))).all())
        retried = dict(
            (await s.execute(select(Job.id, Job.attempts).where(Job.id.in_(orphaned)))).all()  # type: ignore[arg-type]
        )
    assert await _states(maker, EFFECT_KIND) == {JobState.SUCCEEDED: total}
    assert len(effects) == total and {row.job_id for row in effects} == job_ids  # once each, none missing
    # The killed worker's jobs were taken again after their leases lapsed, and finished by the survivor.
    assert all(attempts >= 2 for attempts in retried.values()), retried
    assert not any(row.job_id in orphaned and f"-{victim.pid}-" in row.worker_id for row in effects)


@pytest.mark.postgres_only
async def test_a_job_enqueued_in_another_process_starts_at_once_not_at_the_next_poll(
    effects_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    maker = create_sessionmaker(write_engine(effects_engine), Settings())
    log = tmp_path / "worker.log"
    # Polling every 60 s: only the NOTIFY sent by the enqueuing transaction can start the job in time.
    worker = _start(["worker", "--kind", EFFECT_KIND], _env(database_url, THREADLINE_WORKER_POLL_INTERVAL_S="60"), log)
    try:

        async def listening() -> bool:
            assert worker.poll() is None, log.read_text()[-3000:]
            async with effects_engine.connect() as conn:
                found = await conn.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'threadline-worker'")
                )
            return bool(found)

        await _until(listening, 120, "the worker to listen", [log])
        await asyncio.sleep(0.5)  # past the worker's first claim at start-up
        async with maker() as s, s.begin():
            await enqueue(s, kind=EFFECT_KIND, payload={"sleep_s": 0})

        async def done() -> bool:
            return (await _states(maker, EFFECT_KIND)).get(JobState.SUCCEEDED, 0) == 1

        await _until(done, 10, "the job to run (a wake-up, not the 60 s poll)", [log])
    finally:
        _stop(worker)


async def test_serve_runs_the_api_and_workers_in_one_process_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _start(
        ["serve", "--port", str(port), "--no-bootstrap"],
        _env(url, THREADLINE_WORKER_POLL_INTERVAL_S="0.2"),
        log,
    )
    engine = create_engine(Settings(database_url=url))
    try:

        async def healthy() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200
            except httpx.TransportError:
                return False

        await _until(healthy, 120, "serve to start", [log])
        async with write_engine(engine).begin() as conn:
            await create_effects_table(conn)
        maker = create_sessionmaker(write_engine(engine), Settings())
        async with maker() as s, s.begin():
            for _ in range(20):
                await enqueue(s, kind=EFFECT_KIND, payload={"sleep_s": 0.01})
            await enqueue(s, kind="test.nobody-handles-this")

        async def done() -> bool:
            return (await _states(maker, EFFECT_KIND)).get(JobState.SUCCEEDED, 0) == 20

        await _until(done, 30, "the embedded worker to run the jobs", [log])
        async with maker() as s:
            assert await s.scalar(text("SELECT count(*) FROM job_effects")) == 20
        await _until(lambda: _dead(maker), 10, "the job nobody handles to go dead", [log])
    finally:
        await engine.dispose()
        _stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]


async def _dead(maker: Maker) -> bool:
    return (await _states(maker, "test.nobody-handles-this")).get(JobState.DEAD, 0) == 1


async def test_jobs_cli_lists_retries_and_purges(database_url: str, sessionmaker: Maker) -> None:
    kind = f"test.cli.{time.monotonic_ns()}"
    async with sessionmaker() as s, s.begin():
        dead = await enqueue(s, kind=kind)
        old = await enqueue(s, kind=kind)
        dead.state, dead.last_error, dead.attempts = JobState.DEAD, "ValueError: nope", 8
        dead.finished_at = utcnow()
        old.state, old.finished_at = JobState.SUCCEEDED, utcnow().replace(year=2000)
    listed = await run_cli(database_url, "jobs", "list", "--state", "dead", "--limit", "10000")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if str(dead.public_id) in row)
    assert kind in line and "dead" in line and "ValueError: nope" in line

    retried = await run_cli(database_url, "jobs", "retry", str(dead.public_id))
    assert retried.returncode == 0 and "queued again" in retried.stdout, retried.stderr
    again = await run_cli(database_url, "jobs", "retry", str(dead.public_id))
    assert again.returncode == 1 and "not dead" in again.stderr and "Traceback" not in again.stderr

    purged = await run_cli(database_url, "jobs", "purge", "--older-than-days", "3650")
    assert purged.returncode == 0 and purged.stdout.startswith("purged "), purged.stderr
    async with sessionmaker() as s:
        states: dict[Any, Any] = dict(
            (await s.execute(select(Job.id, Job.state).where(Job.kind == kind))).all()  # type: ignore[arg-type]
        )
    assert states == {dead.id: JobState.QUEUED}
