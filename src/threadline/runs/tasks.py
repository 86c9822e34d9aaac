"""The job that executes a run (``runs.execute``); see runs.runtime for what it does."""

from __future__ import annotations

from typing import Any

from threadline.jobs.registry import JobContext, task
from threadline.models import RunStatus
from threadline.runs.runtime import Runtime
from threadline.runs.service import RUN_JOB

# One Runtime per worker sessionmaker: a process has one, the tests several.
_runtimes: dict[int, Runtime] = {}


@task(RUN_JOB)
async def execute_run(ctx: JobContext, payload: dict[str, Any]) -> None:
    outcome = await runtime_for(ctx).execute(
        str(payload["run"]), attempt=ctx.attempt, max_attempts=ctx.max_attempts, metrics=ctx.metrics
    )
    if outcome is RunStatus.FAILED:
        ctx.outcome = "failed"  # the job is done (not retried), but what it ran failed: so say the job metrics


def runtime_for(ctx: JobContext) -> Runtime:
    maker = ctx.sessionmaker
    if maker is None:
        raise RuntimeError("runs.execute needs the worker's sessionmaker")
    runtime = _runtimes.get(id(maker))
    if runtime is None or (ctx.settings is not None and runtime.settings is not ctx.settings):
        runtime = Runtime(sessionmaker=maker, engine=maker.kw["bind"], settings=ctx.settings)
        _runtimes[id(maker)] = runtime
    return runtime
