"""A real `threadline` server process with its embedded worker: events become signed deliveries to a receiver,
/metrics counts the attempts, and the signing secret never reaches the logs (at debug level)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_tenant
from tests.factories import create_thread, post_message
from tests.livesrv import _LOGS, live_server
from tests.webhooks.conftest import create_webhook, settled
from tests.webhooks.receiver import Receiver
from threadline.config import Settings


@pytest.fixture(scope="module")
def base(database_url: str, engine: Any, settings: Settings) -> Iterator[str]:
    assert settings.database.secret_keys is not None
    with live_server(
        database_url,
        THREADLINE_RUN_WORKERS="true",
        THREADLINE_WORKER_POLL_INTERVAL_S="0.1",
        THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS="true",
        THREADLINE_WEBHOOK_RETRY_SCHEDULE_S="0.2,0.2",
        THREADLINE_SECRET_KEYS=settings.database.secret_keys.get_secret_value(),
        THREADLINE_LOG_LEVEL="debug",
    ) as url:
        yield url


@pytest.fixture
async def live(base: str, sessionmaker: Any) -> AsyncIterator[httpx.AsyncClient]:
    tenant = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=10) as c:
        yield c


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _server_log(base: str) -> str:
    """All of the server's log (livesrv.server_log keeps only the end)."""
    return Path(_LOGS[base]).read_text(errors="replace")


async def test_the_server_delivers_counts_attempts_in_metrics_and_never_logs_the_secret(
    live: httpx.AsyncClient, base: str, receiver: Receiver
) -> None:
    receiver.behave("/e2e", fail=1, status=502)
    hook = await create_webhook(live, receiver.url("/e2e"), event_types=["message.created"])
    receiver.trust("/e2e", hook["secret"])
    before = (await live.get("/metrics")).text
    thread = await create_thread(live)
    sent = [await post_message(live, thread["id"], f"m{i}") for i in range(3)]

    done = await settled(live, hook["id"], 3)
    assert all(d["status"] == "succeeded" for d in done)
    got = receiver.received("/e2e")
    assert len(got) == 4 and all(r.verified for r in got)
    assert sorted(r.json["data"]["id"] for r in got if r.answered == 200) == sorted(m["id"] for m in sent)

    rotated = (await live.post(f"/v1/webhooks/{hook['id']}/rotate_secret")).json()["secret"]
    after = (await live.get("/metrics")).text
    attempts = "threadline_webhook_attempts_total"
    assert _value(after, attempts, outcome="succeeded") - _value(before, attempts, outcome="succeeded") >= 3
    assert _value(after, attempts, outcome="http_error") - _value(before, attempts, outcome="http_error") >= 1
    assert _value(after, "threadline_webhook_attempt_duration_seconds_count") >= 4

    log = _server_log(base)
    assert "webhook.attempt" in log  # the debug level does log the attempts
    for secret in (hook["secret"], rotated):
        assert secret not in log and secret.removeprefix("whsec_") not in log
