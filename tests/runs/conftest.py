"""Run tests: a scripted provider behind every PROMPT agent, and a worker in this process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import threadline.runs.tasks  # noqa: F401 - registers runs.execute
from tests.runs.scripted import ScriptedProvider
from threadline.jobs.registry import registry
from threadline.jobs.worker import Worker, WorkerOptions
from threadline.metrics import Metrics
from threadline.runs.runtime import Runtime


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> ScriptedProvider:
    scripted = ScriptedProvider()
    monkeypatch.setattr(Runtime, "provider", lambda self, name: scripted)
    return scripted


@contextlib.asynccontextmanager
async def running_worker(
    sessionmaker: Any,
    settings: Any,
    *,
    kinds: tuple[str, ...] = ("runs.execute",),
    metrics: Metrics | None = None,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A worker of ``kinds`` in this process, polling fast and backing off briefly (other tests' leftover
    jobs of other kinds are not its business), stopped on exit. ``options``: more ``WorkerOptions``."""
    defaults: dict[str, Any] = {
        "concurrency": 4,
        "lease_s": 30,
        "poll_interval_s": 0.05,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.1,
    }
    config = WorkerOptions(**{**defaults, **options}, kinds=kinds)
    w = Worker(sessionmaker, config, tasks=registry, settings=settings, metrics=metrics)
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        w.stop()
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def worker(sessionmaker: Any, settings: Any) -> AsyncIterator[Worker]:
    """A worker for runs only."""
    async with running_worker(sessionmaker, settings) as w:
        yield w


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.03)
