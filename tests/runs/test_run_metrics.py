"""Run metrics on /metrics: runs by agent, provider, model and outcome, time to first token and duration,
tokens, tool calls and model calls, provider errors by kind; and a job whose work failed counts as failed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.jobs.test_worker import _jobs, _until, _worker
from threadline.app import create_app
from threadline.jobs.registry import JobContext, TaskRegistry
from threadline.jobs.service import enqueue
from threadline.models.enums import JobState

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def fresh_app(settings: Any, engine: Any) -> AsyncIterator[Any]:
    """An app of its own: its metrics start from zero whatever other tests did."""
    app = create_app(settings, engine=engine)
    yield app
    await app.state.last_used.drain()


async def _scrape(app: Any) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await client.get("/metrics")
    assert r.status_code == 200
    return r.text


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_runs_are_counted_by_agent_provider_model_and_outcome_with_tokens_and_timings(fresh_app: Any) -> None:
    metrics = fresh_app.state.metrics
    agent, other = str(uuid.uuid4()), str(uuid.uuid4())
    common = {"provider": "openai", "model": "gpt-4o-mini"}
    metrics.observe_run(
        agent=agent, **common, outcome="completed", duration_s=1.2, ttft_s=0.3,
        input_tokens=120, output_tokens=30, tool_calls=2, iterations=3,
    )  # fmt: skip
    metrics.observe_run(
        agent=agent, **common, outcome="completed", duration_s=0.7, ttft_s=0.2,
        input_tokens=80, output_tokens=10, tool_calls=0, iterations=1,
    )  # fmt: skip
    # A run that failed before any token: its duration counts, its time to first token does not exist.
    metrics.observe_run(
        agent=agent, **common, outcome="failed", duration_s=14.0, ttft_s=None,
        input_tokens=0, output_tokens=0, tool_calls=0, iterations=1,
    )  # fmt: skip
    metrics.observe_run(
        agent=other, provider="local", model="gemma", outcome="cancelled", duration_s=0.05, ttft_s=0.04,
        input_tokens=5, output_tokens=1, tool_calls=0, iterations=1,
    )  # fmt: skip
    # A FLOW agent has neither provider nor model.
    metrics.observe_run(
        agent=other, provider=None, model=None, outcome="completed", duration_s=0.01, ttft_s=None,
        input_tokens=0, output_tokens=0, tool_calls=0, iterations=0,
    )  # fmt: skip
    text = await _scrape(fresh_app)

    runs = "threadline_runs_total"
    assert _value(text, runs, agent=agent, provider="openai", model="gpt-4o-mini", outcome="completed") == 2
    assert _value(text, runs, agent=agent, provider="openai", model="gpt-4o-mini", outcome="failed") == 1
    assert _value(text, runs, agent=agent, outcome="cancelled") is None
    assert _value(text, runs, agent=other, provider="local", model="gemma", outcome="cancelled") == 1
    assert _value(text, runs, agent=other, provider="", model="", outcome="completed") == 1

    labels = {"agent": agent, "provider": "openai", "model": "gpt-4o-mini"}
    assert _value(text, "threadline_run_input_tokens_total", **labels) == 200
    assert _value(text, "threadline_run_output_tokens_total", **labels) == 40
    assert _value(text, "threadline_run_tool_calls_total", **labels) == 2
    assert _value(text, "threadline_run_model_calls_total", **labels) == 5
    assert _value(text, "threadline_run_input_tokens_total", agent=other, provider="local", model="gemma") == 5

    # Histograms by provider and model (no agent: their series multiply by buckets).
    ttft, duration = "threadline_run_time_to_first_token_seconds", "threadline_run_duration_seconds"
    model = {"provider": "openai", "model": "gpt-4o-mini"}
    assert _value(text, f"{ttft}_count", **model) == 2  # the failed run had no first token
    assert _value(text, f"{ttft}_sum", **model) == pytest.approx(0.5)
    assert _value(text, f"{ttft}_bucket", **model, le="0.25") == 1
    assert _value(text, f"{ttft}_bucket", **model, le="0.5") == 2
    assert _value(text, f"{duration}_count", **model) == 3
    assert _value(text, f"{duration}_sum", **model) == pytest.approx(15.9)
    assert _value(text, f"{duration}_bucket", **model, le="1.0") == 1
    assert _value(text, f"{duration}_bucket", **model, le="10.0") == 2
    assert _value(text, f"{duration}_bucket", **model, le="+Inf") == 3
    families = _families(text)
    assert "agent" not in {k for s in families[duration].samples for k in s.labels}
    assert families["threadline_runs"].type == "counter" and families[ttft].type == "histogram"
    assert families["threadline_runs"].documentation  # every metric says what it counts


async def test_provider_errors_are_counted_by_provider_and_kind(fresh_app: Any) -> None:
    metrics = fresh_app.state.metrics
    for kind in ("provider_unavailable", "provider_unavailable", "rate_limited", "timeout", "empty_output"):
        metrics.observe_provider_error(provider="openai", kind=kind)
    metrics.observe_provider_error(provider="local", kind="provider_error")
    text = await _scrape(fresh_app)
    errors = "threadline_provider_errors_total"
    assert _value(text, errors, provider="openai", kind="provider_unavailable") == 2
    assert _value(text, errors, provider="openai", kind="rate_limited") == 1
    assert _value(text, errors, provider="openai", kind="timeout") == 1
    assert _value(text, errors, provider="openai", kind="empty_output") == 1
    assert _value(text, errors, provider="local", kind="provider_error") == 1
    assert _value(text, errors, provider="local", kind="timeout") is None


async def test_nothing_is_made_up_before_a_run_ends(fresh_app: Any) -> None:
    text = await _scrape(fresh_app)
    assert _value(text, "threadline_runs_total") is None
    assert _value(text, "threadline_provider_errors_total") is None
    # Declared all the same, so a dashboard finds the names.
    assert "# TYPE threadline_runs_total counter" in text


async def test_a_job_whose_work_failed_counts_as_failed_not_succeeded_and_is_not_retried(
    fresh_app: Any, sessionmaker: Maker
) -> None:
    failed_kind, ok_kind = f"test.rm.failed.{uuid.uuid4().hex[:8]}", f"test.rm.ok.{uuid.uuid4().hex[:8]}"
    tasks = TaskRegistry()
    calls: list[str] = []

    @tasks.task(failed_kind)
    async def work_failed(ctx: JobContext, payload: dict[str, Any]) -> None:
        calls.append(failed_kind)
        ctx.outcome = "failed"  # what the run job does when its run ends failed

    @tasks.task(ok_kind)
    async def work_done(ctx: JobContext, payload: dict[str, Any]) -> None:
        calls.append(ok_kind)

    worker = _worker(sessionmaker, tasks, failed_kind, ok_kind)
    worker.metrics = fresh_app.state.metrics
    runner = asyncio.create_task(worker.run())
    async with sessionmaker() as s, s.begin():
        await enqueue(s, kind=failed_kind, max_attempts=3)
        await enqueue(s, kind=ok_kind)

    async def finished() -> bool:
        jobs = await _jobs(sessionmaker, failed_kind) + await _jobs(sessionmaker, ok_kind)
        return [j.state for j in jobs] == [JobState.SUCCEEDED, JobState.SUCCEEDED]

    await _until(finished)
    worker.stop()
    await asyncio.wait_for(runner, 10)

    assert sorted(calls) == sorted([failed_kind, ok_kind])  # done once: a failed outcome is not a retry
    (job,) = await _jobs(sessionmaker, failed_kind)
    assert job.attempts == 1
    text = await _scrape(fresh_app)
    completed = "threadline_jobs_completed_total"
    assert _value(text, completed, kind=failed_kind, outcome="failed") == 1
    assert _value(text, completed, kind=failed_kind, outcome="succeeded") is None
    assert _value(text, completed, kind=ok_kind, outcome="succeeded") == 1
    assert _value(text, completed, kind=ok_kind, outcome="failed") is None
    assert _value(text, "threadline_job_duration_seconds_count", kind=failed_kind) == 1
