"""The worker: claims due jobs, runs each in its own transaction, renews leases, shuts down gracefully."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.config import Settings
from threadline.db.engine import sessionmaker_settings
from threadline.jobs import service
from threadline.jobs.backoff import backoff_delay
from threadline.jobs.registry import OUTBOUND_POOL, JobContext, Reschedule, TaskRegistry, registry
from threadline.jobs.repository import JobRepository
from threadline.jobs.service import JOBS_CHANNEL
from threadline.kit.clock import utcnow
from threadline.kit.pglisten import PgListener, libpq_dsn
from threadline.models.enums import JobState
from threadline.models.job import Job

if TYPE_CHECKING:
    from threadline.metrics import Metrics

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """Another worker took the job (our lease lapsed); this attempt's effects are rolled back."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 4
    lease_s: float = 60
    poll_interval_s: float = 1.0
    shutdown_timeout_s: float = 10
    backoff_base_s: float = 5
    backoff_cap_s: float = 3600
    # Only these kinds (a dedicated pool); None takes every kind, and one without a handler goes dead.
    kinds: tuple[str, ...] | None = None
    exclude_kinds: tuple[str, ...] | None = None  # ...and never these (another pool's)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerOptions:
        values: dict[str, Any] = {
            "concurrency": settings.jobs.concurrency,
            "lease_s": settings.jobs.lease_s,
            "poll_interval_s": settings.jobs.poll_interval_s,
            "shutdown_timeout_s": settings.jobs.shutdown_timeout_s,
            "backoff_base_s": settings.jobs.backoff_base_s,
            "backoff_cap_s": settings.jobs.backoff_cap_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class Worker:
    """Runs up to ``concurrency`` jobs at once, each as an asyncio task.

    ``sessionmaker`` must be a write sessionmaker (on SQLite its transactions BEGIN IMMEDIATE, which
    makes a claim atomic).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        options: WorkerOptions | None = None,
        *,
        tasks: TaskRegistry | None = None,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self._settings = settings
        self.metrics = metrics
        self.options = options or WorkerOptions()
        self.tasks = tasks or registry
        self.id = worker_id or new_worker_id()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self.stats = {"succeeded": 0, "failed": 0, "released": 0}
        self._last_bury = float("-inf")
        self._reserved = 0  # slots held for jobs born leased to us, until their transaction ends

    # ------------------------------------------------------------------------------------ control

    def wake(self) -> None:
        """Look for jobs now instead of at the next poll."""
        self._wake.set()

    @property
    def lease_s(self) -> float:
        return self.options.lease_s

    def reserve(self, kind: str) -> bool:
        """Hold a slot for a job born leased to this worker (jobs.service.enqueue(adopt=True))."""
        if self._stopping.is_set() or not self.takes(kind) or self.tasks.get(kind) is None:
            return False
        if len(self._running) + self._reserved >= self.options.concurrency:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        self._reserved = max(0, self._reserved - 1)

    def adopt(self, job: Job) -> None:
        """Start a job born leased to us (its transaction has committed)."""
        self.unreserve()
        self._start(job)

    def takes(self, kind: str) -> bool:
        if self.options.kinds is not None:
            return kind in self.options.kinds
        return not self.options.exclude_kinds or kind not in self.options.exclude_kinds

    def wake_for(self, kinds: frozenset[str]) -> None:
        """Wake up if any of ``kinds`` is ours (an empty set: unknown kinds, wake anyway)."""
        if not kinds or any(self.takes(k) for k in kinds):
            self._wake.set()

    def stop(self) -> None:
        """Stop claiming; ``run`` then lets running jobs finish (up to the timeout) and releases the rest."""
        self._stopping.set()
        self._wake.set()

    @property
    def running_job_ids(self) -> list[int]:
        return list(self._running)

    # ------------------------------------------------------------------------------------ main loop

    @property
    def settings(self) -> Settings:
        """What its handlers get as ``JobContext.settings``: the ones it was given, else those its sessions carry."""
        return self._settings or sessionmaker_settings(self.sessionmaker)

    async def run(self) -> None:
        log.info(
            "worker.started",
            worker_id=self.id,
            concurrency=self.options.concurrency,
            kinds=[k for k in self.tasks.kinds() if self.takes(k)],
        )
        service.add_wakeup(self.wake_for)
        service.add_adopter(self)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await self._claim_loop()
        finally:
            service.remove_wakeup(self.wake_for)
            service.remove_adopter(self)
            await self._drain()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            log.info("worker.stopped", worker_id=self.id, **self.stats)

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            free = self.options.concurrency - len(self._running) - self._reserved
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database restarting must not end the worker
                    log.warning("worker.claim_failed", worker_id=self.id, error=repr(exc))
            if claimed and claimed == free:
                continue  # there may be more due: claim again as soon as a slot frees
            await self._idle()

    async def _idle(self) -> None:
        """Wait for a wake-up, a finished job (a free slot) or the poll interval, whichever comes first."""
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        if len(self._running) >= self.options.concurrency:
            waiters |= set(self._running.values())
        try:
            await asyncio.wait(waiters, timeout=self.options.poll_interval_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                if w not in self._running.values():
                    w.cancel()

    async def _claim(self, limit: int) -> int:
        async with self.sessionmaker() as session, session.begin():
            jobs = await JobRepository(session).claim(
                worker_id=self.id,
                limit=limit,
                now=utcnow(),
                lease_s=self.options.lease_s,
                kinds=self.options.kinds,
                exclude_kinds=self.options.exclude_kinds,
                bury_lapsed=self._bury_due(),
            )
        for job in jobs:
            self._start(job)
        return len(jobs)

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(functools.partial(self._forget, job.id))

    def _bury_due(self) -> bool:
        """Whether this claim should also bury lapsed last attempts (at most every lease/2 seconds)."""
        now = time.monotonic()
        if now - self._last_bury < self.options.lease_s / 2:
            return False
        self._last_bury = now
        return True

    def _forget(self, job_id: int, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)

    # ------------------------------------------------------------------------------------ one job

    async def _execute(self, job: Job) -> None:
        began = time.perf_counter()
        handler = self.tasks.get(job.kind)
        bound = log.bind(worker_id=self.id, job_id=job.id, kind=job.kind, attempt=job.attempts)
        if handler is None:
            buried = await self._record(
                lambda repo: repo.bury(
                    job_id=job.id,
                    worker_id=self.id,
                    error=f"no handler registered for job kind '{job.kind}'",
                    now=utcnow(),
                )
            )
            bound.error("job.dead", reason="unknown kind")
            if buried:
                self._observe(job, "dead", began)
            return
        try:
            async with self.sessionmaker() as session, session.begin():
                ctx = JobContext(
                    session=session,
                    job_id=job.id,
                    public_id=job.public_id,
                    kind=job.kind,
                    attempt=job.attempts,
                    max_attempts=job.max_attempts,
                    workspace_id=job.workspace_id,
                    worker_id=self.id,
                    enqueued_at=job.created_at,
                    metrics=self.metrics,
                    sessionmaker=self.sessionmaker,
                    settings=self.settings,
                )
                await handler(ctx, dict(job.payload or {}))
                # Success commits with the handler's effects, or neither does.
                if not await JobRepository(session).complete(job_id=job.id, worker_id=self.id, now=utcnow()):
                    raise LeaseLost(f"job {job.id} was taken by another worker")
        except asyncio.CancelledError:
            raise  # shutdown: the transaction rolled back; _drain releases the job
        except LeaseLost:
            bound.warning("job.lease_lost")
            return
        except Reschedule as later:
            now = utcnow()
            run_at = now + timedelta(seconds=later.delay_s)
            await self._record(lambda repo: repo.reschedule(job_id=job.id, worker_id=self.id, now=now, run_at=run_at))
            bound.debug("job.rescheduled", delay_s=later.delay_s, reason=str(later))
            return
        except Exception as exc:
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            detail = traceback.format_exc(limit=20)
            delay = backoff_delay(job.attempts, base_s=self.options.backoff_base_s, cap_s=self.options.backoff_cap_s)
            asked = getattr(exc, "retry_after_s", None)  # a handler may carry a third party's Retry-After
            if isinstance(asked, int | float) and asked > delay:
                delay = min(float(asked), self.options.backoff_cap_s)
            now = utcnow()
            state = await self._record(
                lambda repo: repo.fail(
                    job_id=job.id,
                    worker_id=self.id,
                    error=f"{error}\n\n{detail}",
                    now=now,
                    retry_at=now + timedelta(seconds=delay),
                )
            )
            self.stats["failed"] += 1
            bound.warning("job.failed", error=error, state=str(state) if state else None, retry_in_s=round(delay, 3))
            if state is not None:  # None: the outcome was not recorded (lease lost, database away)
                self._observe(job, "dead" if state == JobState.DEAD else "retry", began)
            return
        self.stats["succeeded"] += 1
        self._observe(job, ctx.outcome, began)
        if ctx.outcome == "succeeded":
            bound.debug("job.succeeded")
        else:
            bound.info("job.done", outcome=ctx.outcome)

    def _observe(self, job: Job, outcome: str, began: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_job(job.kind, outcome, time.perf_counter() - began)

    async def _record(self, change: Callable[[JobRepository], Awaitable[Any]]) -> Any:
        """Write a job's outcome in a transaction of its own; a lapse here leaves the lease to expire."""
        try:
            async with self.sessionmaker() as session, session.begin():
                return await change(JobRepository(session))
        except Exception as exc:
            log.error("job.record_failed", worker_id=self.id, error=repr(exc))
            return None

    # ------------------------------------------------------------------------------------ leases

    async def _heartbeat(self) -> None:
        interval = max(self.options.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            ids = self.running_job_ids
            if not ids:
                continue
            try:
                async with self.sessionmaker() as session, session.begin():
                    await JobRepository(session).renew(
                        job_ids=ids, worker_id=self.id, now=utcnow(), lease_s=self.options.lease_s
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker.heartbeat_failed", worker_id=self.id, error=repr(exc))

    async def _drain(self) -> None:
        """Let running jobs finish up to the shutdown timeout; cancel and release the others."""
        tasks = list(self._running.values())
        if tasks:
            log.info("worker.draining", worker_id=self.id, running=len(tasks))
            await asyncio.wait(tasks, timeout=self.options.shutdown_timeout_s)
        unfinished = {job_id: t for job_id, t in self._running.items() if not t.done()}
        for t in unfinished.values():
            t.cancel()
        if unfinished:
            await asyncio.gather(*unfinished.values(), return_exceptions=True)
            released = await self._record(
                lambda repo: repo.release(job_ids=list(unfinished), worker_id=self.id, now=utcnow())
            )
            self.stats["released"] += int(released or 0)
            log.info("worker.released", worker_id=self.id, jobs=len(unfinished))


class WorkerGroup:
    """The workers of one process: the default pool, and the outbound pool (jobs registered with
    ``pool=OUTBOUND_POOL``) with slots of its own. Started, woken and stopped together."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    @classmethod
    def from_settings(
        cls,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        kinds: tuple[str, ...] | None = None,
        concurrency: int | None = None,
        tasks: TaskRegistry | None = None,
    ) -> WorkerGroup:
        """``kinds`` given: one worker for exactly those. Otherwise a default worker for everything but
        the outbound kinds, and, when any are registered, an outbound worker for them."""
        tasks = tasks or registry
        if kinds:
            options = WorkerOptions.from_settings(settings, kinds=kinds, concurrency=concurrency)
            return cls([Worker(sessionmaker, options, tasks=tasks, metrics=metrics, settings=settings)])
        outbound = tuple(tasks.kinds_in(OUTBOUND_POOL))
        default = WorkerOptions.from_settings(settings, exclude_kinds=outbound or None, concurrency=concurrency)
        workers = [Worker(sessionmaker, default, tasks=tasks, metrics=metrics, settings=settings)]
        if outbound:
            options = WorkerOptions.from_settings(
                settings, kinds=outbound, concurrency=settings.jobs.outbound_concurrency
            )
            workers.append(Worker(sessionmaker, options, tasks=tasks, metrics=metrics, settings=settings))
        return cls(workers)

    @property
    def id(self) -> str:
        return self.workers[0].id

    def wake(self, kinds: frozenset[str] = frozenset()) -> None:
        for w in self.workers:
            w.wake_for(kinds)

    async def run(self) -> None:
        """Run the workers; on PostgreSQL also listen for jobs enqueued by other processes."""
        listener = None
        engine = self.workers[0].sessionmaker.kw.get("bind")
        if engine is not None and engine.dialect.name == "postgresql":
            listener = PgListener(
                libpq_dsn(engine.url),
                {JOBS_CHANNEL: lambda kind: self.wake(frozenset({kind}) if kind else frozenset())},
                name="threadline-worker",
            )
            await listener.start(wait_s=2)
        try:
            await asyncio.gather(*(w.run() for w in self.workers))
        finally:
            if listener is not None:
                await listener.close()

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
