"""The guard at connect time: whatever the URL said when it was saved, a delivery connects only to addresses
that are public when it resolves them (DNS rebinding), and never follows a redirect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import create_thread
from tests.webhooks.conftest import FakeDNS, create_webhook, settled
from tests.webhooks.receiver import Receiver
from threadline.config import Settings
from threadline.jobs.worker import Worker

PUBLIC = "93.184.216.34"


@pytest.fixture
def single_attempt(webhook_settings: Settings, tune: Any) -> Settings:
    tune(webhook_retry_schedule_s="")
    return webhook_settings


def _metric(worker: Worker, outcome: str) -> float:
    assert worker.metrics is not None
    value = worker.metrics.registry.get_sample_value("threadline_webhook_attempts_total", {"outcome": outcome})
    return value or 0.0


async def test_a_loopback_url_saved_while_allowed_is_refused_at_connect_time_once_disallowed(
    api: httpx.AsyncClient,
    receiver: Receiver,
    worker: Worker,
    single_attempt: Settings,
    tune: Any,
) -> None:
    hook = await create_webhook(api, receiver.url("/inside"), event_types=["thread.created"])
    tune(webhook_allow_private_urls=False)
    refused_before = _metric(worker, "refused")
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    assert done["status"] == "failed" and done["last_status_code"] is None
    assert done["last_error"].startswith("refused to connect: 127.0.0.1 resolves to 127.0.0.1, a loopback address")
    assert "THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS" in done["last_error"]
    assert receiver.received() == []  # never contacted
    assert _metric(worker, "refused") - refused_before == 1


async def test_a_name_that_rebinds_to_loopback_after_it_was_checked_is_refused(
    api: httpx.AsyncClient,
    receiver: Receiver,
    worker: Worker,
    single_attempt: Settings,
    fake_dns: FakeDNS,
    tune: Any,
) -> None:
    tune(webhook_allow_private_urls=False)
    fake_dns.answers["rebind.example.com"] = [PUBLIC]
    hook = await create_webhook(
        api, f"http://rebind.example.com:{receiver.port}/rebind", event_types=["thread.created"]
    )  # accepted: the name resolved to a public address when it was saved
    fake_dns.answers["rebind.example.com"] = [PUBLIC, "127.0.0.1"]  # and now one of its answers is loopback
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    assert done["status"] == "failed"
    assert "rebind.example.com resolves to 127.0.0.1, a loopback address" in done["last_error"]
    assert receiver.received() == []


async def test_with_the_allow_setting_a_name_connects_to_the_address_it_resolved_to_with_its_own_host_header(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker, fake_dns: FakeDNS
) -> None:
    fake_dns.answers["receiver.internal"] = ["127.0.0.1"]
    hook = await create_webhook(api, f"http://receiver.internal:{receiver.port}/named", event_types=["thread.created"])
    receiver.trust("/named", hook["secret"])
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    assert done["status"] == "succeeded"
    [got] = receiver.received("/named")
    assert got.verified and got.headers["host"] == f"receiver.internal:{receiver.port}"


async def test_a_name_that_does_not_resolve_is_a_clear_failure(
    api: httpx.AsyncClient, worker: Worker, single_attempt: Settings
) -> None:
    hook = await create_webhook(api, "https://no-such-host.invalid/hook", event_types=["thread.created"])
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    assert done["status"] == "failed" and done["last_error"].startswith("cannot connect: cannot resolve no-such-host")


async def test_redirects_are_not_followed(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker, single_attempt: Settings
) -> None:
    receiver.behave("/moved", always_fail=True, status=307, location=receiver.url("/elsewhere"))
    hook = await create_webhook(api, receiver.url("/moved"), event_types=["thread.created"])
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    assert done["status"] == "failed" and done["last_status_code"] == 307 and done["last_error"] == "HTTP 307"
    assert len(receiver.received("/moved")) == 1 and receiver.received("/elsewhere") == []
