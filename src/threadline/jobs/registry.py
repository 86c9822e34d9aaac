"""The task registry: which async handler runs each job kind."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from threadline.config import Settings
    from threadline.metrics import Metrics


JobOutcome = Literal["succeeded", "failed"]


@dataclass
class JobContext:
    """What a handler gets besides its payload: the job's identity and the session of its transaction.

    Whatever the handler writes through ``session`` commits together with the job's success, or not at all.
    ``outcome`` is the one field a handler sets: see its comment.
    """

    session: AsyncSession
    job_id: int
    public_id: uuid.UUID
    kind: str
    attempt: int
    max_attempts: int
    workspace_id: int | None
    worker_id: str
    enqueued_at: datetime
    settings: Settings  # the worker process's settings (providers, limits, policies)
    metrics: Metrics | None = None  # the worker process's metrics, for handlers that record their own
    # For handlers that must not hold their job's transaction open (e.g. while waiting on a model): they
    # write in short transactions of their own, and make those writes idempotent (at-least-once).
    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    # A handler that returns normally but whose work failed for good (a run that failed, recorded as such) sets
    # "failed": the job is done all the same (not retried), and the worker counts it as failed in
    # threadline_jobs_completed_total and its log. Raising is what asks for a retry.
    outcome: JobOutcome = "succeeded"


class Reschedule(Exception):
    """Raised by a handler whose job is not due yet: it goes back to the queue for ``delay_s`` seconds
    from now, and the attempt does not count."""

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"rescheduled in {delay_s} s")
        self.delay_s = max(0.0, delay_s)


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[Any]]


DEFAULT_POOL = "default"
# Jobs that wait on third parties (webhook receivers, messaging providers): a pool of their own, so that a
# slow or dead receiver fills only its slots and never delays other work.
OUTBOUND_POOL = "outbound"


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._pools: dict[str, str] = {}

    def task(self, kind: str, *, pool: str = DEFAULT_POOL) -> Callable[[Handler], Handler]:
        """Decorator: ``@task("kind")`` on ``async def handler(ctx, payload)``; ``pool`` picks the worker
        slots it runs in (``OUTBOUND_POOL`` for handlers that mostly wait on someone else's server)."""

        def register(handler: Handler) -> Handler:
            existing = self._handlers.get(kind)
            if existing is not None and existing is not handler:
                raise ValueError(f"job kind {kind!r} already has a handler ({existing.__qualname__})")
            self._handlers[kind] = handler
            self._pools[kind] = pool
            return handler

        return register

    def kinds_in(self, pool: str) -> list[str]:
        return sorted(kind for kind, p in self._pools.items() if p == pool)

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


registry = TaskRegistry()
task = registry.task

# Modules of threadline's own tasks, imported by every worker.
BUILTIN_TASK_MODULES: tuple[str, ...] = (
    "threadline.webhooks.tasks",
    "threadline.runs.tasks",
    "threadline.channels.delivery",
    "threadline.privacy.tasks",
)


def import_task_modules(extra: Iterable[str] = ()) -> None:
    """Import the modules that register tasks: threadline's own and those named in settings."""
    for name in (*BUILTIN_TASK_MODULES, *extra):
        if name.strip():
            importlib.import_module(name.strip())


def parse_modules(raw: str) -> list[str]:
    return [m.strip() for m in raw.split(",") if m.strip()]
