"""GET /metrics: request counts and latencies by route template, job outcomes and queue depth."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.cli.test_cli import run_cli
from tests.conftest import Tenant
from tests.jobs.effects_tasks import EFFECT_KIND, create_effects_table
from tests.jobs.test_processes import _env, _start, _stop
from tests.jobs.test_processes import _until as _until_or_fail
from tests.jobs.test_worker import _jobs, _until, _worker
from tests.livesrv import free_port

from threadline.app import create_app
from threadline.config import Settings
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.jobs.registry import JobContext, TaskRegistry
from threadline.jobs.repository import JobRepository
from threadline.jobs.service import enqueue
from threadline.models.enums import JobState

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def fresh_app(settings: Any, engine: Any) -> AsyncIterator[Any]:
    """An app of its own: its metrics start from zero whatever other tests did."""
    app = create_app(settings, engine=engine)
    yield app
    await app.state.last_used.drain()


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _value(text: str, name: str, **labels: str) -> float | None:
    for sample_labels, value in _samples(text, name):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    return None


async def test_requests_are_counted_by_route_template_method_and_status(fresh_app: Any, tenant: Tenant) -> None:
    thread_id = f"thr_{uuid.uuid4().hex}"
    async with await _client(fresh_app) as client:
        client.headers.update(tenant.headers)
        for _ in range(3):
            assert (await client.get("/v1/tags")).status_code == 200
        assert (await client.get(f"/v1/threads/{thread_id}/messages")).status_code == 404
        assert (await client.get("/v1/nothing-here/42")).status_code == 404
        r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain") and "version=" in r.headers["content-type"]
    text = r.text
    total = "threadline_http_requests_total"
    assert _value(text, total, method="GET", route="/v1/tags", status="200") == 3
    # The template, never the raw path: ids are not labels.
    assert _value(text, total, method="GET", route="/v1/threads/{thread_id}/messages", status="404") == 1
    assert thread_id not in text and "/v1/nothing-here" not in text
    assert _value(text, total, method="GET", route="unmatched", status="404") == 1
    # Latency histogram: cumulative buckets from 5 ms to 10 s, plus +Inf, count and sum.
    bucket = "threadline_http_request_duration_seconds_bucket"
    les = [labels["le"] for labels, _ in _samples(text, bucket) if labels["route"] == "/v1/tags"]
    assert les[0] == "0.005" and "10.0" in les and les[-1] == "+Inf"
    assert _value(text, bucket, method="GET", route="/v1/tags", le="+Inf") == 3
    assert _value(text, "threadline_http_request_duration_seconds_count", route="/v1/tags") == 3
    # Scrapes are not requests the metrics count.
    assert not [labels for labels, _ in _samples(text, total) if labels["route"] == "/metrics"]
    async with await _client(fresh_app) as client:
        again = (await client.get("/metrics")).text
    assert _value(again, total, route="/metrics") is None and _value(again, total, route="unmatched") == 1


async def test_metrics_are_not_in_the_openapi_document(fresh_app: Any) -> None:
    async with await _client(fresh_app) as client:
        doc = (await client.get("/openapi.json")).json()
    assert "/metrics" not in doc["paths"]


async def test_metrics_can_be_turned_off(settings: Any, engine: Any) -> None:
    app = create_app(settings.replace(metrics_enabled=False), engine=engine)
    try:
        async with await _client(app) as client:
            r = await client.get("/metrics")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    finally:
        await app.state.last_used.drain()


async def test_job_outcomes_durations_and_queue_depth(fresh_app: Any, sessionmaker: Maker) -> None:
    ok_kind, bad_kind = f"test.m.ok.{uuid.uuid4().hex[:8]}", f"test.m.bad.{uuid.uuid4().hex[:8]}"
    tasks = TaskRegistry()

    @tasks.task(ok_kind)
    async def succeeds(ctx: JobContext, payload: dict[str, Any]) -> None:
        return None

    @tasks.task(bad_kind)
    async def fails(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise ValueError("always")

    metrics = fresh_app.state.metrics
    worker = _worker(sessionmaker, tasks, ok_kind, bad_kind)
    worker.metrics = metrics
    runner = asyncio.create_task(worker.run())
    async with sessionmaker() as s, s.begin():
        await enqueue(s, kind=ok_kind)
        await enqueue(s, kind=bad_kind, max_attempts=2)

    async def finished() -> bool:
        jobs = await _jobs(sessionmaker, ok_kind) + await _jobs(sessionmaker, bad_kind)
        return [j.state for j in jobs] == [JobState.SUCCEEDED, JobState.DEAD]

    await _until(finished)
    worker.stop()
    await asyncio.wait_for(runner, 10)

    async with await _client(fresh_app) as client:
        before_refresh = (await client.get("/metrics")).text
        await metrics.refresh_job_counts(sessionmaker)
        text = (await client.get("/metrics")).text
    assert _value(before_refresh, "threadline_jobs") is None  # no count yet: nothing made up
    completed = "threadline_jobs_completed_total"
    assert _value(text, completed, kind=ok_kind, outcome="succeeded") == 1
    assert _value(text, completed, kind=bad_kind, outcome="retry") == 1
    assert _value(text, completed, kind=bad_kind, outcome="dead") == 1
    assert _value(text, completed, kind=ok_kind, outcome="dead") is None
    assert _value(text, "threadline_job_duration_seconds_count", kind=bad_kind) == 2
    assert _value(text, "threadline_job_duration_seconds_bucket", kind=ok_kind, le="+Inf") == 1
    # Queue depth: every state is reported; the whole table, so other tests' jobs count too.
    assert {labels["state"] for labels, _ in _samples(text, "threadline_jobs")} == {s.value for s in JobState}
    dead = _value(text, "threadline_jobs", state="dead")
    assert dead is not None and dead >= 1
    async with sessionmaker() as s:
        counts = await JobRepository(s).count_by_state()
    assert dead == counts[JobState.DEAD]


async def test_a_standalone_worker_serves_its_metrics_on_metrics_port(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    assert (await run_cli(url, "migrate")).returncode == 0
    engine = create_engine(Settings(database_url=url))
    port = free_port()
    log = tmp_path / "worker.log"
    proc = _start(
        ["worker", "--metrics-port", str(port)],
        _env(url, THREADLINE_WORKER_POLL_INTERVAL_S="0.1", THREADLINE_METRICS_REFRESH_INTERVAL_S="0.2"),
        log,
    )
    try:
        async with write_engine(engine).begin() as conn:
            await create_effects_table(conn)
        maker = create_sessionmaker(write_engine(engine), Settings())
        async with maker() as s, s.begin():
            for _ in range(3):
                await enqueue(s, kind=EFFECT_KIND)
        scraped = ""

        async def counted() -> bool:
            nonlocal scraped
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                async with httpx.AsyncClient() as client:
                    scraped = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=1)).text
            except httpx.TransportError:
                return False
            return (
                _value(scraped, "threadline_jobs_completed_total", kind=EFFECT_KIND, outcome="succeeded") == 3
                and _value(scraped, "threadline_jobs", state="succeeded") == 3
            )

        await _until_or_fail(counted, 30, "the worker's metrics to show 3 succeeded jobs", [log])
        assert _value(scraped, "threadline_job_duration_seconds_count", kind=EFFECT_KIND) == 3
        assert _value(scraped, "threadline_jobs", state="queued") == 0
    finally:
        await engine.dispose()
        _stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
