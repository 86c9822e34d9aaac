"""Erasing an end user (GDPR article 17) through the API, with workers running: afterwards no row of any table
holds their words or their phone number; the figures kept are exact; the job survives a crash midway; and
messages that arrive while it runs go to a new end user, never to the one being erased."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.channels.test_twilio_inbound import post_signed, quiet_agent, sms_line, threads_of_line
from tests.conftest import Tenant, add_key
from tests.dialects.conftest import ByMessage
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.privacy.conftest import (
    EchoReceiver,
    as_tenant,
    distinctive,
    erase,
    erased,
    new_phone,
    scan,
)
from tests.runs.conftest import running_worker, until
from tests.runs.scripted import Step
from threadline.audit.service import Actor
from threadline.channels.repository import InboundRepository
from threadline.config import Settings
from threadline.engines.providers.base import ProviderError
from threadline.models import EndUser, Job, Message, Run, Thread
from threadline.models.enums import Scope
from threadline.privacy import erasure as erasure_module
from threadline.privacy.erasure import ERASE_KIND, Eraser
from threadline.privacy.service import request_erasure

FLOW = {
    "start": "ask",
    "nodes": {
        "ask": {"type": "ask", "text": "What is your secret word?", "var": "word", "next": "thanks"},
        "thanks": {"type": "send", "text": "Noted: {{word}}", "next": "ask"},
    },
}


async def _runs_of(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/runs", params={"limit": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def _all_runs_finished(api: httpx.AsyncClient, thread_id: str, count: int) -> None:
    async def finished() -> bool:
        runs = await _runs_of(api, thread_id)
        return len(runs) == count and all(r["status"] in ("completed", "failed") for r in runs)

    await until(finished)


async def _messages(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def _row_keys(sessionmaker: Any, thread_ids: list[str]) -> tuple[set[int], set[int]]:
    """(message row ids, run job ids) of these threads, as the erasure must find them."""
    uids = [uuid.UUID(t) for t in thread_ids]
    async with sessionmaker() as s:
        threads = select(Thread.id).where(Thread.public_id.in_(uids))
        messages = set((await s.execute(select(Message.id).where(Message.thread_id.in_(threads)))).scalars())
        runs = set((await s.execute(select(Run.job_id).where(Run.thread_id.in_(threads)))).scalars())
    return messages, {j for j in runs if j is not None}


async def _jobs_left(sessionmaker: Any, message_ids: set[int], job_ids: set[int]) -> list[Job]:
    keys = [f"message:{i}" for i in message_ids] + [f"read:{i}" for i in message_ids]
    async with sessionmaker() as s:
        stmt = select(Job).where((Job.id.in_(job_ids)) | (Job.dedupe_key.in_(keys)))
        return list((await s.execute(stmt)).scalars())


async def _deliveries_settled(api: httpx.AsyncClient, webhook_id: str) -> None:
    async def settled() -> bool:
        r = await api.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"status": "pending", "limit": 1})
        return r.json()["data"] == []

    await until(settled)


async def test_an_erased_end_user_leaves_no_trace_in_any_table_and_others_keep_theirs(
    api: httpx.AsyncClient,
    app: Any,
    other_tenant: Tenant,
    twilio_side: httpx.AsyncClient,
    provider: ByMessage,
    busy_worker: Any,
    echo: EchoReceiver,
    sessionmaker: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(erasure_module, "BATCH_SIZE", 7)  # many batches, even for a few messages
    phrase, phone = distinctive("zebra-quartz"), new_phone()
    other_phrase = distinctive("walrus-onyx")

    # A webhook, so that every event is delivered; the receiver echoes each body, which the delivery log keeps.
    webhook = (await api.post("/v1/webhooks", json={"url": echo.url})).json()

    # The person, made with an Idempotency-Key: the stored response holds their number and name.
    r = await api.post(
        "/v1/end_users",
        json={
            "channel": "sms",
            "address": phone,
            "display_name": f"Ada {phrase}",
            "info": f"likes {phrase}",
            "metadata": {"note": phrase},
        },
        headers={"Idempotency-Key": distinctive("key")},
    )
    assert r.status_code == 201, r.text
    person = r.json()

    # By SMS, to a FLOW agent that keeps their answer in its flow state; its replies wait to be sent (jobs).
    flow_agent = await create_agent(api, version={"mode": "FLOW", "provider": "flow", "flow": FLOW})
    line = await sms_line(api, agent=flow_agent)
    for runs, body in ((1, "hello"), (2, f"my word is {phrase}")):
        r = await post_signed(twilio_side, line.sms_path, line.sms(sender=phone, body=body), line.auth_token)
        assert r.status_code == 200, r.text
        (sms_thread,) = await threads_of_line(api, line)
        await _all_runs_finished(api, sms_thread["id"], runs)
    assert sms_thread["end_user_id"] == person["id"]

    # Over the API: a thread with metadata, a message answered by a model, one whose run failed with their
    # words in its error, an operator's reply with tool calls, each POSTed with an Idempotency-Key.
    prompt = await create_agent(api, version={"mode": "PROMPT", "provider": "openai", "model": "m", "settings": {}})
    r = await api.post(
        "/v1/threads",
        json={"agent_id": prompt["id"], "end_user_id": person["id"], "metadata": {"topic": phrase}},
        headers={"Idempotency-Key": distinctive("key")},
    )
    assert r.status_code == 201, r.text
    api_thread = r.json()
    provider.answers[f"Remember {phrase}"] = Step(text=f"I will remember {phrase}")
    provider.answers[f"Refuse {phrase}"] = Step(error=ProviderError(f"the model refused {phrase}", retryable=False))
    for content in (f"Remember {phrase}", f"Refuse {phrase}"):
        r = await api.post(
            f"/v1/threads/{api_thread['id']}/messages",
            params={"wait": 10},
            json={"content": content, "metadata": {"mood": phrase}},
            headers={"Idempotency-Key": distinctive("key")},
        )
        assert r.status_code == 201, r.text
    await _all_runs_finished(api, api_thread["id"], 2)
    assert {r["status"] for r in await _runs_of(api, api_thread["id"])} == {"completed", "failed"}
    await post_message(
        api,
        api_thread["id"],
        "Looked it up",
        role="assistant",
        tool_calls=[{"id": "call_1", "name": "lookup", "arguments": {"query": phrase}, "result": f"found {phrase}"}],
    )
    # A long thread with an agent that does not answer: many batches of messages and events.
    long_thread = await create_thread(api, agent_id=(await quiet_agent(api))["id"], end_user_id=person["id"])
    for i in range(20):
        await post_message(api, long_thread["id"], f"{phrase} #{i}")

    # Another end user of the workspace, and one of another workspace: theirs must stay.
    neighbour = await create_end_user(api, display_name=f"Bob {other_phrase}")
    neighbour_thread = await create_thread(api, end_user_id=neighbour["id"])
    await post_message(api, neighbour_thread["id"], f"hello {other_phrase}")
    async with as_tenant(app, other_tenant) as elsewhere:
        stranger = await create_end_user(elsewhere, channel="sms", address=phone, display_name=f"Cy {other_phrase}")
        await post_message(elsewhere, (await create_thread(elsewhere, end_user_id=stranger["id"]))["id"], other_phrase)

    await _deliveries_settled(api, webhook["id"])
    person_threads = [sms_thread["id"], api_thread["id"], long_thread["id"]]
    messages_before = sum([len(await _messages(api, t)) for t in person_threads])
    message_keys, run_jobs = await _row_keys(sessionmaker, person_threads)
    assert await _jobs_left(sessionmaker, message_keys, run_jobs)  # send jobs of the SMS replies, run jobs
    # The scan finds them where they are, and so can tell when they are gone.
    before = await scan(sessionmaker, settings, phrase, phone)
    holding = {t.table for t in before}
    assert {"end_users", "threads", "messages", "runs", "events", "idempotency_keys", "webhook_attempts"} <= holding
    assert {t.table for t in before if t.needle == phone} >= {"end_users", "idempotency_keys"}
    assert any(t.column == "flow_state" for t in before) and any(t.column == "tool_calls" for t in before)

    started = await erase(api, person["id"])
    assert started["end_user_id"] == person["id"] and started["status"] in ("queued", "running")
    done = await erased(api, started["id"])

    assert await scan(sessionmaker, settings, phrase) == []
    # The other workspace's end user has the same number: it is theirs, and all that is left of it anywhere.
    (trace,) = await scan(sessionmaker, settings, phone)
    assert (trace.table, trace.column) == ("end_users", "address")
    async with sessionmaker() as s:
        assert (await s.get(EndUser, int(trace.row.removeprefix("id=")))).workspace_id == other_tenant.workspace_id
    assert await _jobs_left(sessionmaker, message_keys, run_jobs) == []

    assert done["planned"] == {"threads": 3, "messages": messages_before}
    assert done["kept"]["threads"] == done["erased"]["threads"] == 3
    assert done["kept"]["messages"] == done["erased"]["messages"] == messages_before
    assert done["kept"]["messages_inbound"] + done["kept"]["messages_outbound"] == messages_before
    assert done["kept"]["runs"] == 4 and done["kept"]["input_tokens"] > 0
    assert done["erased"]["events"] > messages_before and done["erased"]["webhook_deliveries"] > 0
    assert done["erased"]["idempotency_keys"] == 4
    assert done["step"] == "done" and done["error"] is None and done["finished_at"] is not None

    # Gone for every lookup; asking again answers with the same erasure.
    r = await api.get(f"/v1/end_users/{person['id']}")
    assert r.status_code == 410 and r.json()["error"]["code"] == "end_user_erased", r.text
    assert (await api.get(f"/v1/threads/{api_thread['id']}")).status_code == 404
    again = await api.delete(f"/v1/end_users/{person['id']}", params={"erase": "true"})
    assert again.status_code == 202 and again.json()["id"] == started["id"]
    assert again.json()["status"] == "completed"
    # What others hold is untouched.
    assert [m["content"] for m in await _messages(api, neighbour_thread["id"])] == [f"hello {other_phrase}"]
    assert (await api.get(f"/v1/end_users/{neighbour['id']}")).json()["display_name"] == f"Bob {other_phrase}"
    assert {t.table for t in await scan(sessionmaker, settings, other_phrase)} >= {"end_users", "messages", "events"}


async def test_messages_during_an_erasure_go_to_a_new_end_user_and_the_erased_threads_take_none(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any, settings: Settings
) -> None:
    phone = new_phone()
    line = await sms_line(api, agent=await quiet_agent(api))
    r = await post_signed(twilio_side, line.sms_path, line.sms(sender=phone, body="first"), line.auth_token)
    assert r.status_code == 200, r.text
    (old_thread,) = await threads_of_line(api, line)
    old_id = old_thread["end_user_id"]

    started = await erase(api, old_id)  # no worker yet: the erasure waits, queued
    assert started["status"] == "queued"

    # Their thread takes nothing more over /v1: 410, saying why.
    r = await api.post(f"/v1/threads/{old_thread['id']}/messages", json={"content": "anyone there?"})
    assert r.status_code == 410, r.text
    assert r.json()["error"]["code"] == "end_user_erased"
    # Nor a new thread for them; and they are gone from lookups and lists at once.
    r = await api.post("/v1/threads", json={"agent_id": old_thread["agent_id"], "end_user_id": old_id})
    assert (r.status_code, r.json()["error"]["param"]) == (410, "end_user_id"), r.text
    assert (await api.get(f"/v1/end_users/{old_id}")).status_code == 410
    assert (await api.delete(f"/v1/end_users/{old_id}")).status_code == 410
    assert (await api.get("/v1/end_users", params={"address": phone})).json()["data"] == []

    # The same phone writes again: a new end user, on a new thread.
    r = await post_signed(twilio_side, line.sms_path, line.sms(sender=phone, body="it is me again"), line.auth_token)
    assert r.status_code == 200, r.text
    (newcomer,) = (await api.get("/v1/end_users", params={"channel": "sms", "address": phone})).json()["data"]
    assert newcomer["id"] != old_id
    new_thread = next(t for t in await threads_of_line(api, line) if t["id"] != old_thread["id"])
    assert new_thread["end_user_id"] == newcomer["id"]

    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)):
        done = await erased(api, started["id"])
    assert done["kept"]["messages"] == 1  # "first"; the later message is the newcomer's
    assert [m["content"] for m in await _messages(api, new_thread["id"])] == ["it is me again"]
    assert (await api.get(f"/v1/end_users/{newcomer['id']}")).json()["address"] == phone
    assert (await api.get(f"/v1/threads/{old_thread['id']}/messages")).status_code == 404
    assert [t["id"] for t in await threads_of_line(api, line)] == [new_thread["id"]]


async def test_a_run_that_answers_after_the_erasure_began_stores_nothing(
    api: httpx.AsyncClient, provider: ByMessage, sessionmaker: Any, settings: Settings
) -> None:
    phrase = distinctive("late-answer")
    gate = asyncio.Event()
    provider.answers["hold on"] = Step(text=f"here is {phrase}", gate=gate)
    agent = await create_agent(api, version={"mode": "PROMPT", "provider": "openai", "model": "m", "settings": {}})
    thread = await create_thread(api, agent_id=agent["id"])
    async with running_worker(sessionmaker, settings, kinds=("runs.execute",)):
        created = await post_message(api, thread["id"], "hold on")
        await until(lambda: _started(provider))
        started = await erase(api, thread["end_user_id"])
        gate.set()

        async def ended() -> bool:
            r = await api.get(f"/v1/runs/{created['run']['id']}")
            return bool(r.json()["status"] == "cancelled")

        await until(ended)
    run = (await api.get(f"/v1/runs/{created['run']['id']}")).json()
    assert run["error"] == {"code": "end_user_erased", "message": "the end user was erased"}
    assert [m["content"] for m in await _messages(api, thread["id"])] == ["hold on"]  # no reply, not even hidden
    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)):
        await erased(api, started["id"])
    assert await scan(sessionmaker, settings, phrase) == []


async def _started(provider: ByMessage) -> bool:
    return provider.started.is_set()


async def test_an_erasure_that_fails_midway_is_retried_and_counts_everything_once(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure_module, "BATCH_SIZE", 4)
    phrase = distinctive("crash-test")
    end_user = await create_end_user(api, display_name=phrase)
    agent = await quiet_agent(api)
    for _ in range(2):
        thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])
        for i in range(11):
            await post_message(api, thread["id"], f"{phrase} {i}")
    calls = 0
    delete_messages = Eraser.delete_messages

    async def crashing_once(self: Eraser, *args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:  # some batches are committed already: the retry must not count them again
            raise RuntimeError(f"simulated crash while erasing {phrase}")
        return await delete_messages(self, *args, **kwargs)

    monkeypatch.setattr(Eraser, "delete_messages", crashing_once)
    started = await erase(api, end_user["id"])
    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)):
        done = await erased(api, started["id"])

    assert calls > 3
    assert done["planned"] == {"threads": 2, "messages": 22}
    assert done["erased"]["messages"] == done["kept"]["messages"] == 22
    assert done["erased"]["threads"] == done["kept"]["threads"] == 2
    assert done["error"] is None
    async with sessionmaker() as s:
        stmt = select(Job).where(Job.kind == ERASE_KIND, Job.workspace_id == tenant.workspace_id)
        (job,) = (await s.execute(stmt)).scalars()
    assert (job.state, job.attempts) == ("succeeded", 2)
    # The failed attempt's error (kept on the job) names the kind of error, never what was being erased.
    assert await scan(sessionmaker, settings, phrase) == []


async def test_an_erasure_whose_job_gives_up_is_failed_and_asking_again_resumes_it(
    api: httpx.AsyncClient, sessionmaker: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, tune: Any
) -> None:
    phrase = distinctive("give-up")
    thread = await create_thread(api, metadata={"x": phrase})
    await post_message(api, thread["id"], phrase)
    tune(job_max_attempts=2)

    async def broken(self: Eraser, *args: Any) -> None:
        raise OSError("the disk is full")

    monkeypatch.setattr(Eraser, "erase_idempotency_keys", broken)
    started = await erase(api, thread["end_user_id"])
    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)):

        async def failed() -> bool:
            r = await api.get(f"/v1/erasures/{started['id']}")
            return bool(r.json()["status"] == "failed")

        await until(failed)
    body = (await api.get(f"/v1/erasures/{started['id']}")).json()
    assert body["error"] == "OSError" and body["erased"]["messages"] == 1

    monkeypatch.undo()
    again = await erase(api, thread["end_user_id"])
    assert again["id"] == started["id"] and again["status"] == "queued"
    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)):
        done = await erased(api, started["id"])
    assert done["kept"]["messages"] == 1 and done["error"] is None
    assert await scan(sessionmaker, settings, phrase) == []


# ------------------------------------------------------------------------------------------ who may


async def test_erasing_needs_the_admin_scope_and_an_end_user_of_this_workspace(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: Any,
) -> None:
    end_user = await create_end_user(api)
    writer = await add_key(sessionmaker, tenant, (Scope.WRITE,))
    reader = await add_key(sessionmaker, tenant, (Scope.READ,))
    for key in (writer, reader):
        r = await client.delete(
            f"/v1/end_users/{end_user['id']}", params={"erase": "true"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 403, r.text
    foreign = {"Authorization": f"Bearer {other_tenant.key}"}
    for end_user_id in (end_user["id"], str(uuid.uuid4()), "not-an-id"):
        r = await client.delete(f"/v1/end_users/{end_user_id}", params={"erase": "true"}, headers=foreign)
        assert r.status_code == 404, r.text
    assert (await api.get(f"/v1/end_users/{end_user['id']}")).status_code == 200  # nothing began

    started = await erase(api, end_user["id"])
    for headers, status in (
        ({"Authorization": f"Bearer {writer}"}, 403),
        (foreign, 404),
        (tenant.headers, 200),
    ):
        r = await client.get(f"/v1/erasures/{started['id']}", headers=headers)
        assert r.status_code == status, r.text
    assert (await api.get("/v1/erasures/not-an-id")).status_code == 404
    # Without erase, a write key deletes at once, as before.
    other = await create_end_user(api)
    r = await client.delete(f"/v1/end_users/{other['id']}", headers={"Authorization": f"Bearer {writer}"})
    assert r.status_code == 204


@pytest.mark.postgres_only
async def test_an_sms_whose_sender_is_erased_while_it_is_stored_goes_to_a_new_end_user(
    api: httpx.AsyncClient,
    tenant: Tenant,
    twilio_side: httpx.AsyncClient,
    sessionmaker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phone = new_phone()
    line = await sms_line(api, agent=await quiet_agent(api))
    r = await post_signed(twilio_side, line.sms_path, line.sms(sender=phone, body="first"), line.auth_token)
    assert r.status_code == 200, r.text
    (old_thread,) = await threads_of_line(api, line)
    find = InboundRepository.end_user_by_address
    erasures: list[Any] = []

    async def erased_meanwhile(self: InboundRepository, channel: Any, address: str) -> Any:
        found = await find(self, channel, address)
        if found is not None and not erasures:
            # The sender's erasure begins and commits between this message finding them and locking them.
            async with sessionmaker() as session, session.begin():
                erasure = await request_erasure(
                    session, workspace_id=tenant.workspace_id, end_user_id=str(found.public_id), actor=Actor.system()
                )
                erasures.append(erasure.public_id)
        return found

    monkeypatch.setattr(InboundRepository, "end_user_by_address", erased_meanwhile)
    r = await post_signed(twilio_side, line.sms_path, line.sms(sender=phone, body="second"), line.auth_token)

    assert r.status_code == 200, r.text
    assert erasures
    (newcomer,) = (await api.get("/v1/end_users", params={"channel": "sms", "address": phone})).json()["data"]
    assert newcomer["id"] != old_thread["end_user_id"]
    new_thread = next(t for t in await threads_of_line(api, line) if t["id"] != old_thread["id"])
    assert new_thread["end_user_id"] == newcomer["id"]
    assert [m["content"] for m in await _messages(api, new_thread["id"])] == ["second"]
    assert [m["content"] for m in await _messages(api, old_thread["id"])] == ["first"]
