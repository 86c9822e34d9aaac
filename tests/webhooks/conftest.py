"""Webhook fixtures: a receiver on 127.0.0.1, settings for fast tests, the worker in this process, a fake DNS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import threadline.webhooks.tasks  # noqa: F401  (registers webhooks.deliver)
from tests.webhooks.receiver import Receiver
from threadline.config import Settings
from threadline.jobs.worker import Worker, WorkerOptions
from threadline.kit import ssrf
from threadline.metrics import Metrics
from threadline.models import Job
from threadline.models.enums import JobState
from threadline.webhooks.service import DELIVER_KIND

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as r:
        yield r


@pytest.fixture
def webhook_settings(tune: Any) -> Settings:
    """The session's settings (the app's too) with a receiver on 127.0.0.1 allowed and a compressed retry
    schedule; the worker below takes them from its sessions. Tests change them further with ``tune``."""
    return tune(
        webhook_allow_private_urls=True,
        webhook_retry_schedule_s="0.2,0.4",
        webhook_timeout_s=2.0,
        webhook_disable_after_failures=1000,
        webhook_disable_after_s=0.0,
    )


@pytest.fixture
async def worker(sessionmaker: Maker, webhook_settings: Settings) -> AsyncIterator[Worker]:
    """A worker for webhooks.deliver only, polling often, with metrics of its own.

    The database lives for the whole session: deliveries that earlier tests left queued (to receivers
    long gone, each taking up to the timeout) are dropped first, so they cannot queue ahead of this
    test's own and make it wait on a loaded machine."""
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Job).where(Job.kind == DELIVER_KIND, Job.state == JobState.QUEUED))
    options = WorkerOptions(concurrency=8, lease_s=30, poll_interval_s=0.05, kinds=(DELIVER_KIND,))
    w = Worker(sessionmaker, options, metrics=Metrics())  # its settings: its sessions' (webhook_settings)
    runner = asyncio.create_task(w.run())
    yield w
    w.stop()
    await asyncio.wait_for(runner, 20)


class FakeDNS:
    """Answers for names the tests make up; anything else goes to the real resolver."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self._real = ssrf.resolve

    async def resolve(self, host: str, port: int) -> list[str]:
        if host in self.answers:
            return list(self.answers[host])
        return await self._real(host, port)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    monkeypatch.setattr(ssrf, "resolve", dns.resolve)
    return dns


async def until(check: Callable[[], Awaitable[bool] | bool], within_s: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.03)


async def create_webhook(api: httpx.AsyncClient, url: str, **fields: Any) -> dict[str, Any]:
    r = await api.post("/v1/webhooks", json={"url": url, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def deliveries(api: httpx.AsyncClient, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def delivery_detail(api: httpx.AsyncClient, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def settled(api: httpx.AsyncClient, webhook_id: str, count: int, within_s: float = 15) -> list[dict[str, Any]]:
    """Wait until the webhook has ``count`` deliveries, none pending; returns them oldest first."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = await deliveries(api, webhook_id)
        return len(found) == count and all(d["status"] != "pending" for d in found)

    await until(done, within_s, f"{count} settled deliveries of {webhook_id}")
    return found
