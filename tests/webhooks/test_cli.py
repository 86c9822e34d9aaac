"""`threadline webhooks deliveries`: the operators' view of recent deliveries, filtered by endpoint and status."""

from __future__ import annotations

import httpx

from tests.cli.test_cli import run_cli
from tests.factories import create_thread
from tests.webhooks.conftest import create_webhook, settled
from tests.webhooks.receiver import Receiver
from threadline.jobs.worker import Worker


async def test_deliveries_are_listed_newest_first_by_endpoint_and_status(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker, database_url: str
) -> None:
    receiver.behave("/cli", fail=2)
    hook = await create_webhook(api, receiver.url("/cli"), event_types=["thread.created"])
    other = await create_webhook(api, receiver.url("/cli-other"), event_types=["thread.created"])
    for _ in range(2):
        await create_thread(api)
    done = await settled(api, hook["id"], 2)
    await settled(api, other["id"], 2)

    result = await run_cli(database_url, "webhooks", "deliveries", "--webhook", hook["id"])
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "WEBHOOK",
        "EVENT",
        "STATUS",
        "ATTEMPTS",
        "LAST_CODE",
        "NEXT_ATTEMPT",
        "UPDATED",
        "LAST_ERROR",
    ]
    assert [line.split()[0] for line in lines] == [d["id"] for d in reversed(done)]
    assert all(line.split()[1] == hook["id"] and line.split()[2] == "thread.created" for line in lines)

    failed = [d for d in done if d["status"] == "failed"]
    result = await run_cli(database_url, "webhooks", "deliveries", "--webhook", hook["id"], "--status", "failed")
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == [d["id"] for d in reversed(failed)]
    for line in result.stdout.splitlines()[1:]:
        assert line.split()[3:6] == ["failed", "3", "500"] and line.rstrip().endswith("HTTP 500")

    result = await run_cli(database_url, "webhooks", "deliveries", "--webhook", "nope")
    assert result.returncode == 1 and "not a webhook id" in result.stderr and "Traceback" not in result.stderr
    result = await run_cli(database_url, "webhooks", "deliveries", "--status", "lost")
    assert result.returncode == 2
