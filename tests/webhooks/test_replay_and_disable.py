"""Replaying one delivery or every event since a seq, and disabling an endpoint after a run of failures."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from tests.conftest import Tenant
from tests.factories import create_thread
from tests.webhooks.conftest import create_webhook, deliveries, delivery_detail, settled, until
from tests.webhooks.receiver import Receiver
from threadline.config import Settings
from threadline.jobs.worker import Worker, WorkerOptions
from threadline.models import Event
from threadline.webhooks import service
from threadline.webhooks.service import DELIVER_KIND


async def _wait_for(api: httpx.AsyncClient, hook_id: str, delivery_id: str, **wanted: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def matches() -> bool:
        nonlocal found
        found = await delivery_detail(api, hook_id, delivery_id)
        return all(found[k] == v for k, v in wanted.items())

    await until(matches, what=f"delivery {delivery_id} to have {wanted}")
    return found


async def test_replaying_a_delivery_sends_it_again_with_the_same_webhook_id(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker
) -> None:
    hook = await create_webhook(api, receiver.url("/again"), event_types=["thread.created"])
    receiver.trust("/again", hook["secret"])
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)

    r = await api.post(f"/v1/webhooks/{hook['id']}/deliveries/{done['id']}/replay")
    assert r.status_code == 202, r.text
    replayed = r.json()
    assert replayed["id"] == done["id"] and replayed["status"] == "pending" and replayed["next_attempt_at"]
    detail = await _wait_for(api, hook["id"], done["id"], status="succeeded", attempt_count=2)
    assert [a["attempt"] for a in detail["attempts"]] == [1, 2]
    got = receiver.received("/again")
    assert len(got) == 2 and all(r.verified for r in got)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == done["event_id"]
    assert got[0].body == got[1].body


async def test_replaying_a_failed_delivery_starts_a_new_series_and_drops_the_old_one(
    api: httpx.AsyncClient,
    receiver: Receiver,
    worker: Worker,
    webhook_settings: Settings,
    tune: Any,
) -> None:
    tune(webhook_retry_schedule_s="0.6")
    receiver.behave("/fixme", fail=1)
    hook = await create_webhook(api, receiver.url("/fixme"), event_types=["thread.created"])
    await create_thread(api)

    async def first_failed() -> bool:
        found = await deliveries(api, hook["id"])
        return bool(found) and found[0]["attempt_count"] == 1

    await until(first_failed, what="the first attempt to fail")
    [pending] = await deliveries(api, hook["id"])
    assert pending["status"] == "pending"  # its retry is due 0.6 s after the failure
    r = await api.post(f"/v1/webhooks/{hook['id']}/deliveries/{pending['id']}/replay")
    assert r.status_code == 202
    await _wait_for(api, hook["id"], pending["id"], status="succeeded", attempt_count=2)
    await asyncio.sleep(0.9)  # past the retry of the first series: it must do nothing
    assert len(receiver.received("/fixme")) == 2
    assert (await delivery_detail(api, hook["id"], pending["id"]))["attempt_count"] == 2


async def test_replay_is_refused_for_a_disabled_endpoint_an_unknown_delivery_or_an_expired_event(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker, sessionmaker: Any, tenant: Tenant
) -> None:
    hook = await create_webhook(api, receiver.url("/refuse"), event_types=["thread.created"])
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    replay = f"/v1/webhooks/{hook['id']}/deliveries/{done['id']}/replay"
    r = await api.post(f"/v1/webhooks/{hook['id']}/deliveries/{hook['id']}/replay")
    assert r.status_code == 404

    assert (await api.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": False})).status_code == 200
    for path, body in ((replay, None), (f"/v1/webhooks/{hook['id']}/replay", {"after_seq": 0})):
        r = await api.post(path, json=body)
        assert r.status_code == 409 and r.json()["error"]["code"] == "webhook_disabled", r.text

    assert (await api.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True})).status_code == 200
    async with sessionmaker() as s, s.begin():  # retention took the event
        await s.execute(delete(Event).where(Event.workspace_id == tenant.workspace_id))
    r = await api.post(replay)
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_expired"
    r = await api.post(f"/v1/webhooks/{hook['id']}/replay", json={"after_seq": -1})
    assert r.status_code == 422 and r.json()["error"]["param"] == "after_seq"


async def test_replay_since_a_seq_sends_every_retained_matching_event_in_bounded_batches(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Events from before the endpoint existed: three threads, and messages it does not subscribe to.
    threads = [await create_thread(api) for _ in range(3)]
    hook = await create_webhook(api, receiver.url("/since"), event_types=["thread.created"])
    receiver.trust("/since", hook["secret"])
    assert await deliveries(api, hook["id"]) == []
    monkeypatch.setattr(service, "REPLAY_MAX_EVENTS", 2)

    r = await api.post(f"/v1/webhooks/{hook['id']}/replay", json={"after_seq": 0})
    assert r.status_code == 202, r.text
    first = r.json()
    assert first["object"] == "webhook_replay" and first["queued"] == 2 and first["has_more"] is True
    r = await api.post(f"/v1/webhooks/{hook['id']}/replay", json={"after_seq": first["last_seq"]})
    second = r.json()
    assert second["queued"] == 1 and second["has_more"] is False and second["last_seq"] > first["last_seq"]

    done = await settled(api, hook["id"], 3)
    assert all(d["status"] == "succeeded" and d["event_type"] == "thread.created" for d in done)
    got = receiver.received("/since")
    # Queued oldest first; sent side by side, so they may arrive in any order (receivers order by seq).
    assert sorted(r.json["data"]["id"] for r in got) == sorted(t["id"] for t in threads)
    assert all(r.verified for r in got)
    seqs = sorted(d["event_seq"] for d in done)
    assert seqs[-1] == second["last_seq"]

    # Again from the first one's seq: the later two are sent again (a new series of the same deliveries).
    r = await api.post(f"/v1/webhooks/{hook['id']}/replay", json={"after_seq": seqs[0]})
    assert r.json()["queued"] == 2 and r.json()["last_seq"] == seqs[2]

    async def resent() -> bool:
        return len(receiver.received("/since")) == 5

    await until(resent, what="the replayed events")
    done = await settled(api, hook["id"], 3)
    assert sorted(d["attempt_count"] for d in done) == [1, 2, 2]
    r = await api.post(f"/v1/webhooks/{hook['id']}/replay", json={"after_seq": seqs[2]})
    assert r.json() == {"object": "webhook_replay", "queued": 0, "last_seq": None, "has_more": False}


async def test_a_long_run_of_failures_disables_the_endpoint_fails_its_pending_deliveries_and_says_so(
    api: httpx.AsyncClient,
    receiver: Receiver,
    worker: Worker,
    webhook_settings: Settings,
    tune: Any,
) -> None:
    tune(webhook_retry_schedule_s="0.05,0.05,60")
    tune(webhook_disable_after_failures=4)
    receiver.behave("/dying", always_fail=True, status=500)
    watcher = await create_webhook(api, receiver.url("/watcher"), event_types=["webhook_endpoint.*"])
    receiver.trust("/watcher", watcher["secret"])
    hook = await create_webhook(api, receiver.url("/dying"), event_types=["thread.created"])

    await create_thread(api)  # its delivery fails 3 times, then waits a minute for its last retry
    [waiting] = await deliveries(api, hook["id"])
    waiting = await _wait_for(api, hook["id"], waiting["id"], attempt_count=3)
    assert waiting["status"] == "pending"
    run = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert run["enabled"] is True and run["consecutive_failures"] == 3 and run["failing_since"] is not None

    await create_thread(api)  # the 4th failure in a row: disabled
    await settled(api, hook["id"], 2)
    endpoint = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert endpoint["enabled"] is False and endpoint["consecutive_failures"] == 4
    assert endpoint["disabled_reason"].startswith("disabled after 4 consecutive failed attempts since")
    assert endpoint["disabled_reason"].endswith("the last: HTTP 500")
    first, second = await deliveries(api, hook["id"])
    assert first["id"] == waiting["id"] and first["status"] == "failed" and first["last_error"] == "endpoint disabled"
    assert first["attempt_count"] == 3 and first["next_attempt_at"] is None
    assert second["status"] == "failed" and second["attempt_count"] == 1 and second["last_error"] == "HTTP 500"

    [announced] = await settled(api, watcher["id"], 1)
    assert announced["event_type"] == "webhook_endpoint.disabled" and announced["status"] == "succeeded"
    [got] = receiver.received("/watcher")
    assert got.verified and got.json["type"] == "webhook_endpoint.disabled" and got.json["thread_id"] is None
    assert got.json["data"]["id"] == hook["id"] and got.json["data"]["enabled"] is False
    assert got.json["data"]["disabled_reason"] == endpoint["disabled_reason"] and "secret" not in got.json["data"]

    # Disabled: new events make no deliveries for it.
    await create_thread(api)
    await asyncio.sleep(0.2)
    assert len(await deliveries(api, hook["id"])) == 2 and len(receiver.received("/dying")) == 4

    # Re-enabling clears the run; what it missed can be replayed.
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True})
    enabled = r.json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    assert enabled["consecutive_failures"] == 0 and enabled["failing_since"] is None


async def test_failures_must_also_span_the_minimum_time_and_a_success_ends_the_run(
    api: httpx.AsyncClient,
    receiver: Receiver,
    worker: Worker,
    webhook_settings: Settings,
    tune: Any,
) -> None:
    tune(webhook_retry_schedule_s="0.05,0.05")
    tune(webhook_disable_after_failures=2)
    tune(webhook_disable_after_s=3600)
    receiver.behave("/flapping", fail=3)
    hook = await create_webhook(api, receiver.url("/flapping"), event_types=["thread.created"])
    await create_thread(api)
    [done] = await settled(api, hook["id"], 1)
    assert done["status"] == "failed" and done["attempt_count"] == 3
    endpoint = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert endpoint["enabled"] is True and endpoint["consecutive_failures"] == 3  # not an hour of failures yet

    await create_thread(api)  # the receiver answers 200 now
    await settled(api, hook["id"], 2)
    endpoint = (await api.get(f"/v1/webhooks/{hook['id']}")).json()
    assert endpoint["consecutive_failures"] == 0 and endpoint["failing_since"] is None


async def test_a_delivery_whose_event_expired_before_its_attempt_fails_without_a_request(
    api: httpx.AsyncClient, receiver: Receiver, webhook_settings: Settings, sessionmaker: Any, tenant: Tenant
) -> None:
    hook = await create_webhook(api, receiver.url("/late"), event_types=["thread.created"])
    await create_thread(api)  # no worker yet: the delivery waits
    [waiting] = await deliveries(api, hook["id"])
    assert waiting["status"] == "pending" and waiting["attempt_count"] == 0
    async with sessionmaker() as s, s.begin():
        await s.execute(delete(Event).where(Event.workspace_id == tenant.workspace_id))

    options = WorkerOptions(concurrency=2, lease_s=30, poll_interval_s=0.05, kinds=(DELIVER_KIND,))
    worker = Worker(
        sessionmaker,
        options,
    )
    runner = asyncio.create_task(worker.run())
    try:
        done = await _wait_for(api, hook["id"], waiting["id"], status="failed")
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 20)
    assert done["last_error"] == "the event is past its retention and can no longer be sent"
    assert done["attempt_count"] == 0 and done["attempts"] == [] and receiver.received() == []
