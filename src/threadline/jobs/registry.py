"""The task registry: which async handler runs each job kind."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from threadline.metrics import Metrics


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides its payload: the job's identity and the session of its transaction.

    Whatever the handler writes through ``session`` commits together with the job's success, or not at all.
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
    metrics: Metrics | None = None  # the worker process's metrics, for handlers that record their own


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[Any]]


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def task(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@task("kind")`` on ``async def handler(ctx, payload)``."""

        def register(handler: Handler) -> Handler:
            existing = self._handlers.get(kind)
            if existing is not None and existing is not handler:
                raise ValueError(f"job kind {kind!r} already has a handler ({existing.__qualname__})")
            self._handlers[kind] = handler
            return handler

        return register

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


registry = TaskRegistry()
task = registry.task

# Modules of threadline's own tasks, imported by every worker (none yet; the agent runtime, delivery and
# webhooks add theirs here).
BUILTIN_TASK_MODULES: tuple[str, ...] = ()


def import_task_modules(extra: Iterable[str] = ()) -> None:
    """Import the modules that register tasks: threadline's own and those named in settings."""
    for name in (*BUILTIN_TASK_MODULES, *extra):
        if name.strip():
            importlib.import_module(name.strip())


def parse_modules(raw: str) -> list[str]:
    return [m.strip() for m in raw.split(",") if m.strip()]
