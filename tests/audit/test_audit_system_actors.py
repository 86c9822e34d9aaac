"""Actions nobody's key made: an agent handing its thread to a human (through its run, in a worker), and
threadline disabling a webhook endpoint after a run of failed deliveries."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

import threadline.runs.tasks  # noqa: F401 - registers runs.execute
from tests.audit.helpers import actions, audit_events
from tests.factories import create_agent, create_thread
from tests.runs.conftest import running_worker
from tests.webhooks.conftest import create_webhook, settled, webhook_settings  # noqa: F401 - fixture
from tests.webhooks.receiver import Receiver
from threadline.config import Settings
from threadline.jobs.worker import Worker, WorkerOptions
from threadline.metrics import Metrics
from threadline.webhooks.service import DELIVER_KIND


async def test_a_handoff_by_the_agents_run_is_recorded_as_the_agent(
    api: httpx.AsyncClient, sessionmaker: Any, settings: Settings
) -> None:
    reason = f"the end user said {secrets.token_hex(6)}"  # may quote the conversation: never in the log
    flow = {
        "version": 1,
        "start": "human",
        "nodes": {"human": {"type": "handoff", "message": "A person will answer here.", "reason": reason}},
    }
    agent = await create_agent(api, version={"mode": "FLOW", "provider": "flow", "flow": flow})
    thread = await create_thread(api, agent_id=agent["id"])
    async with running_worker(sessionmaker, settings):
        r = await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "help"})
        assert r.status_code == 201, r.text
        assert r.json()["run"]["status"] == "completed", r.text
    assert (await api.get(f"/v1/threads/{thread['id']}")).json()["active"] is False

    [event] = await audit_events(api, target_id=thread["id"])
    assert event["action"] == "thread.handed_off"
    assert event["actor"] == {"type": "agent", "id": agent["id"], "key_prefix": None}
    assert event["client_address"] is None  # a worker's job, not a request
    # The request id, when there is one, is that of the request whose commit started the run.
    assert event["request_id"] in (None, r.headers["x-request-id"])
    assert event["details"] == {}
    assert reason not in (await api.get("/v1/audit_events", params={"limit": 100})).text


@pytest.fixture
def receiver() -> Any:
    with Receiver().running() as r:
        yield r


async def test_an_endpoint_disabled_after_failures_is_recorded_as_threadline_itself(
    api: httpx.AsyncClient,
    sessionmaker: Any,
    receiver: Receiver,
    webhook_settings: Settings,  # noqa: F811
    tune: Any,
) -> None:
    tune(webhook_disable_after_failures=1)
    receiver.behave("/dying", always_fail=True, status=500)
    hook = await create_webhook(api, receiver.url("/dying"), event_types=["thread.created"])
    options = WorkerOptions(concurrency=2, lease_s=30, poll_interval_s=0.05, kinds=(DELIVER_KIND,))
    worker = Worker(
        sessionmaker,
        options,
        metrics=Metrics(),
    )
    runner = asyncio.create_task(worker.run())
    try:
        await create_thread(api)
        await settled(api, hook["id"], 1)
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 20)
    assert (await api.get(f"/v1/webhooks/{hook['id']}")).json()["enabled"] is False

    events = await audit_events(api, action="webhook.*")
    assert actions(events) == ["webhook.created", "webhook.disabled"]
    disabled = events[1]
    assert disabled["actor"] == {"type": "system", "id": None, "key_prefix": None}
    assert disabled["target"] == {"type": "webhook", "id": hook["id"]}
    assert disabled["details"] == {"consecutive_failures": 1}
    assert disabled["client_address"] is None and hook["secret"] not in str(events)
