"""Run tests: a scripted provider behind every PROMPT agent, and a worker in this process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import threadline.runs.tasks  # noqa: F401 - registers runs.execute
from tests.runs.scripted import ScriptedProvider
from threadline.jobs.registry import registry
from threadline.jobs.worker import Worker, WorkerOptions
from threadline.runs.runtime import Runtime


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> ScriptedProvider:
    scripted = ScriptedProvider()
    monkeypatch.setattr(Runtime, "provider", lambda self, name: scripted)
    return scripted


@pytest.fixture
async def worker(sessionmaker: Any, settings: Any) -> AsyncIterator[Worker]:
    """A worker for runs only, polling fast (other tests' leftover jobs are not its business)."""
    options = WorkerOptions(
        concurrency=4, lease_s=30, poll_interval_s=0.05, backoff_base_s=0.05, backoff_cap_s=0.1, kinds=("runs.execute",)
    )
    w = Worker(sessionmaker, options, tasks=registry, settings=settings)
    task = asyncio.create_task(w.run())
    yield w
    w.stop()
    await asyncio.wait_for(task, 20)


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.03)
