"""SMS and WhatsApp conversations end to end, through HTTP and the providers' stand-ins on 127.0.0.1: a
signed inbound message is stored RECEIVED, the agent answers, the reply is stored QUEUED and sent by the
``channels.deliver`` job (SENDING, then SENT with the provider's fields), and the provider's signed status
callbacks take it to DELIVERED and READ, never backwards; Feather and Altur show the same. Then what can go
wrong: a provider outage (retried, then FAILED with the provider's error), a refusal (not retried), a
request that timed out (not sent twice; its status reports still find it), long texts (one stored message
per provider message, sent in order), forged and duplicate callbacks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

import threadline.channels.delivery  # noqa: F401 - registers channels.deliver
from tests.channels import test_twilio_inbound as sms
from tests.channels import test_whatsapp_inbound as wa
from tests.conftest import Tenant
from tests.dialects.conftest import ByMessage
from tests.factories import create_agent
from tests.fakes.twilio_server import Accept, Drop, TwilioError, TwilioStandIn
from tests.fakes.whatsapp_server import GraphError, WhatsAppStandIn
from tests.runs.conftest import running_worker as runs_worker
from tests.runs.conftest import until
from tests.runs.scripted import Step
from threadline.channels.outbox import DELIVER_KIND, RECEIPT_KIND
from threadline.config import Settings
from threadline.engines.providers.base import ProviderError
from threadline.jobs.worker import Worker
from threadline.kit.clock import utcnow
from threadline.metrics import Metrics
from threadline.models import Event, Job
from threadline.workspaces.bootstrap import DEMO_FLOW

HOST = "http://testserver"
STATUS_CHANGES = ("status",)


def running_worker(sessionmaker: Any, settings: Settings) -> contextlib.AbstractAsyncContextManager[Worker]:
    """A worker for runs and sends, with metrics."""
    kinds = ("runs.execute", DELIVER_KIND, RECEIPT_KIND)
    return runs_worker(sessionmaker, settings, kinds=kinds, backoff_cap_s=0.2, metrics=Metrics())


def channel_settings(settings: Settings, **changes: Any) -> Settings:
    """The test settings with the provider stand-ins reachable and Twilio's callbacks coming to the test app."""
    return settings.replace(
        **{"channel_allow_private_urls": True, "public_base_url": HOST, "channel_send_timeout_s": 5, **changes}
    )


@pytest.fixture
async def sender(sessionmaker: Any, settings: Settings, tune: Any) -> AsyncIterator[Worker]:
    tune(channel_send_max_attempts=3)
    async with running_worker(sessionmaker, channel_settings(settings)) as w:
        yield w


async def message_at(api: httpx.AsyncClient, thread_id: str, index: int) -> dict[str, Any]:
    messages = await sms.messages_of(api, thread_id)
    return messages[index] if len(messages) > index else {}


async def reached(api: httpx.AsyncClient, thread_id: str, index: int, *statuses: str) -> dict[str, Any]:
    """The thread's message at ``index`` once its status is one of ``statuses``."""

    async def check() -> bool:
        return (await message_at(api, thread_id, index)).get("status") in statuses

    await until(check)
    return await message_at(api, thread_id, index)


def sends(worker: Worker, channel: str, outcome: str) -> float:
    """The worker's ``threadline_channel_sends_total`` sample for ``channel`` and ``outcome``."""
    assert worker.metrics is not None
    labels = {"channel": channel, "outcome": outcome}
    return worker.metrics.registry.get_sample_value("threadline_channel_sends_total", labels) or 0.0


async def status_history(sessionmaker: Any, tenant: Tenant, message_id: str) -> list[str]:
    """The statuses a message went through, from its events: created, then each change of status."""
    async with sessionmaker() as s:
        rows = (
            await s.execute(
                select(Event.type, Event.data, Event.changes)
                .where(
                    Event.workspace_id == tenant.workspace_id, Event.type.in_(("message.created", "message.updated"))
                )
                .order_by(Event.seq)
            )
        ).all()
    return [
        data["status"]
        for type_, data, changes in rows
        if data.get("id") == message_id and (type_ == "message.created" or "status" in (changes or ()))
    ]


async def jobs_of(sessionmaker: Any, tenant: Tenant, kind: str = DELIVER_KIND) -> list[Job]:
    async with sessionmaker() as s:
        stmt = select(Job).where(Job.kind == kind, Job.workspace_id == tenant.workspace_id).order_by(Job.id)
        return list((await s.execute(stmt)).scalars())


def feather(tenant: Tenant) -> dict[str, str]:
    return {"X-API-Key": tenant.key}


def altur(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"api-key {tenant.key}"}


async def twilio_line(api: httpx.AsyncClient, stand_in: TwilioStandIn, agent: dict[str, Any]) -> sms.Line:
    return await sms.sms_line(
        api,
        agent=agent,
        account_sid=stand_in.account_sid,
        auth_token=stand_in.auth_token,
        api_base_url=stand_in.base_url,
    )


async def sms_thread(
    api: httpx.AsyncClient, caller: httpx.AsyncClient, stand_in: TwilioStandIn, agent: dict[str, Any]
) -> tuple[sms.Line, dict[str, Any]]:
    """An SMS line on ``stand_in`` routed to ``agent``, and the thread a first SMS from the customer opened."""
    line = await twilio_line(api, stand_in, agent)
    r = await sms.post_signed(caller, line.sms_path, line.sms(body="Hello?"), line.auth_token)
    assert r.status_code == 200, r.text
    (thread,) = await sms.threads_of_line(api, line)
    return line, thread


async def twilio_reports(
    client: httpx.AsyncClient, stand_in: TwilioStandIn, line: sms.Line, sid: str, status: str, **extra: Any
) -> httpx.Response:
    """Twilio POSTs message ``sid``'s new ``status`` to the StatusCallback it was given, signed."""
    url, params = stand_in.status_callback(sid, status, **extra)
    assert url is not None
    return await client.post(url, data=params, headers=sms.sign(line.auth_token, url, params))


# ------------------------------------------------------------------------------------------ SMS


async def test_an_sms_conversation_end_to_end(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    provider: ByMessage,
    sender: Worker,
    sessionmaker: Any,
    tenant: Tenant,
) -> None:
    provider.answers = {"Is my order on its way?": Step(text="Yes, it ships today.")}
    agent = await sms.prompt_agent(api)
    line = await twilio_line(api, twilio, agent)

    r = await sms.post_signed(twilio_side, line.sms_path, line.sms(body="Is my order on its way?"), line.auth_token)
    assert (r.status_code, r.text) == (200, sms.EMPTY_TWIML)
    (thread,) = await sms.threads_of_line(api, line)
    inbound = await message_at(api, thread["id"], 0)
    assert (inbound["direction"], inbound["status"]) == ("INBOUND", "RECEIVED")

    reply = await reached(api, thread["id"], 1, "SENT")
    (request,) = twilio.requests
    (resource,) = twilio.messages
    assert request.form["To"] == sms.CUSTOMER
    assert request.form["From"] == sms.FROM_NUMBER
    assert request.form["Body"] == "Yes, it ships today."
    assert request.form["StatusCallback"] == f"{HOST}{line.status_path}?message={reply['id']}"
    assert reply["content"] == "Yes, it ships today."
    assert (reply["direction"], reply["role"], reply["sent_by"]) == ("OUTBOUND", "assistant", "agent")
    assert reply["external_id"] == resource["sid"]
    assert reply["provider_account_id"] == twilio.account_sid
    assert reply["segments"] == 1
    assert reply["price_currency"] == "USD"
    assert reply["sent_at"] is not None and reply["delivered_at"] is None
    assert sends(sender, "sms", "sent") == 1
    assert line.auth_token not in r.text

    # Twilio reports delivery, then the read receipt; then a late "sent" and a repeated "delivered".
    assert (await twilio_reports(twilio_side, twilio, line, resource["sid"], "delivered")).status_code == 200
    delivered = await message_at(api, thread["id"], 1)
    assert delivered["status"] == "DELIVERED" and delivered["delivered_at"] is not None
    assert (await twilio_reports(twilio_side, twilio, line, resource["sid"], "read")).status_code == 200
    for late in ("sent", "delivered"):
        assert (await twilio_reports(twilio_side, twilio, line, resource["sid"], late)).status_code == 200
    done = await message_at(api, thread["id"], 1)
    assert done["status"] == "READ"
    assert done["read_at"] is not None and done["delivered_at"] == delivered["delivered_at"]
    assert await status_history(sessionmaker, tenant, reply["id"]) == ["QUEUED", "SENDING", "SENT", "DELIVERED", "READ"]

    # A forged report (signed with another token) is refused and changes nothing.
    url, params = twilio.status_callback(resource["sid"], "failed", error_code="30008")
    assert url is not None
    r = await twilio_side.post(url, data=params, headers=sms.sign("not-the-token", url, params))
    assert r.status_code == 403
    assert (await message_at(api, thread["id"], 1))["status"] == "READ"

    # Feather's SMS log and Altur's thread show the same conversation.
    r = await twilio_side.get(f"/feather/api/v1/threads/{thread['id']}/messages", headers=feather(tenant))
    assert r.status_code == 200, r.text
    shown = r.json()["thread"]["messages"]
    by_id = {m["id"]: m for m in shown}
    assert by_id[inbound["id"]]["direction"] == "INBOUND" and by_id[inbound["id"]]["status"] == "RECEIVED"
    assert by_id[inbound["id"]]["twilioMessageSid"] == inbound["external_id"]
    assert by_id[inbound["id"]]["twilioNumSegments"] == 1
    out = by_id[reply["id"]]
    assert {k: out[k] for k in ("direction", "messageBody", "status", "twilioMessageSid", "twilioAccountSid")} == {
        "direction": "OUTBOUND",
        "messageBody": "Yes, it ships today.",
        "status": "READ",
        "twilioMessageSid": resource["sid"],
        "twilioAccountSid": twilio.account_sid,
    }
    assert out["twilioNumSegments"] == 1 and out["twilioPriceCurrency"] == "USD"
    assert out["sentAt"] and out["deliveredAt"] and out["readAt"]
    assert out["twilioErrorCode"] is None
    r = await twilio_side.get(f"/altur/api/v1.0/message/{thread['id']}", headers=altur(tenant))
    assert r.status_code == 200, r.text
    altur_messages = r.json()
    assert [(m["sent_by"], m["content"]) for m in altur_messages] == [
        ("EU", "Is my order on its way?"),
        ("AI", "Yes, it ships today."),
    ]
    assert altur_messages[1]["read"] is True


async def test_when_the_agent_fails_on_sms_the_customer_gets_the_fallback_never_the_error(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    provider: ByMessage,
    sender: Worker,
) -> None:
    fallback = "Sorry, something went wrong; a person will get back to you."
    provider.answers = {
        "Is my order on its way?": Step(
            error=ProviderError(
                "could not reach 127.0.0.1:9 (ConnectError)", retryable=False, code="provider_unavailable"
            )
        )
    }
    version = {"mode": "PROMPT", "provider": "openai", "model": "test-model", "failure_reply": fallback}
    agent = await create_agent(api, name="Fragile", version={**version, "settings": {"debounce_s": 0}})
    line = await twilio_line(api, twilio, agent)
    r = await sms.post_signed(twilio_side, line.sms_path, line.sms(body="Is my order on its way?"), line.auth_token)
    assert r.status_code == 200, r.text
    (thread,) = await sms.threads_of_line(api, line)

    async def both_stored() -> bool:
        return len(await sms.messages_of(api, thread["id"])) >= 3

    await until(both_stored)
    fallback_message = await reached(api, thread["id"], 2, "SENT")
    note = await message_at(api, thread["id"], 1)
    assert note["role"] == "system" and "provider_unavailable" in note["content"]
    assert note["external_id"] is None  # recorded for operators, never handed to Twilio
    assert fallback_message["role"] == "assistant" and fallback_message["content"] == fallback
    assert [req.form["Body"] for req in twilio.requests] == [fallback]


async def test_an_operator_message_on_an_textedis_sent_and_a_thread_sends_in_order(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sender: Worker,
) -> None:
    _, thread = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    r = await api.post("/v1/users", json={"email": "ops@example.com", "first_name": "Sam"})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    # The first message meets a busy Twilio once: the next ones wait for it, whatever the workers do.
    twilio.script(TwilioError.rate_limited(retry_after=0))
    for text in ("Hi, this is Sam.", "Let me check.", "Found it."):
        r = await api.post(
            f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "user_id": user_id, "content": text}
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "QUEUED"
    for index in (1, 2, 3):
        await reached(api, thread["id"], index, "SENT")
    bodies = [request.form["Body"] for request in twilio.requests]
    assert bodies == ["Hi, this is Sam.", "Hi, this is Sam.", "Let me check.", "Found it."]
    sent = await message_at(api, thread["id"], 1)
    assert sent["sent_by"] == "operator"


async def test_a_twilio_outage_is_retried_then_the_message_fails_with_twilios_error(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sender: Worker,
    sessionmaker: Any,
    tenant: Tenant,
) -> None:
    # A version that stores what the end user sends and answers nothing: Feather shows threads with a version.
    version = {"mode": "PROMPT", "provider": "openai", "model": "m", "discard_inbound": True}
    line, thread = await sms_thread(api, twilio_side, twilio, await create_agent(api, name="Listener", version=version))
    twilio.default = TwilioError.unavailable()

    r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "One moment."})
    failed = await reached(api, thread["id"], 1, "FAILED")

    assert len(twilio.requests) == 3  # channel_send_max_attempts (3 in these tests)
    # At least: the worker also takes jobs other tests left queued, whose providers are gone (no "sent").
    assert sends(sender, "sms", "retry") >= 2 and sends(sender, "sms", "failed") >= 1
    assert sends(sender, "sms", "sent") == 0
    assert failed["error_code"] == "20503"
    assert failed["error_message"] and "unavailable" in failed["error_message"].lower()
    assert failed["failed_at"] is not None and failed["external_id"] is None
    assert line.auth_token not in str(failed)
    assert await status_history(sessionmaker, tenant, r.json()["id"]) == ["QUEUED", "SENDING", "FAILED"]
    (job,) = await jobs_of(sessionmaker, tenant)
    assert (job.state, job.attempts) == ("succeeded", 3)
    r = await twilio_side.get(f"/feather/api/v1/threads/{thread['id']}/messages", headers=feather(tenant))
    assert r.status_code == 200, r.text
    shown = r.json()["thread"]["messages"][-1]
    assert (shown["status"], shown["twilioErrorCode"]) == ("FAILED", "20503")


async def test_a_message_twilio_refuses_fails_at_once_and_the_next_one_still_goes(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sender: Worker,
) -> None:
    _, thread = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    twilio.script(TwilioError.invalid_to(sms.CUSTOMER))

    for text in ("First.", "Second."):
        await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": text})
    failed = await reached(api, thread["id"], 1, "FAILED")
    await reached(api, thread["id"], 2, "SENT")

    assert failed["error_code"] == "21211"
    assert [request.form["Body"] for request in twilio.requests] == ["First.", "Second."]


async def test_a_send_that_timed_out_is_not_sent_again_and_twilios_reports_still_find_it(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sessionmaker: Any,
    settings: Settings,
) -> None:
    line, thread = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    twilio.script(Accept(delay_s=3))  # Twilio takes the message but its answer comes too late

    async with running_worker(sessionmaker, channel_settings(settings, channel_send_timeout_s=0.5)):
        await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "On its way."})
        failed = await reached(api, thread["id"], 1, "FAILED")
        assert failed["error_code"] == "timeout"
        assert "not sent again" in failed["error_message"]
        assert failed["external_id"] is None
        (resource,) = twilio.messages
        assert len(twilio.requests) == 1

        # Twilio's report names the message by the StatusCallback it was given: the sid is recorded, and the
        # proof of delivery outranks the failure.
        assert (await twilio_reports(twilio_side, twilio, line, resource["sid"], "delivered")).status_code == 200
        shown = await message_at(api, thread["id"], 1)
        assert (shown["status"], shown["external_id"]) == ("DELIVERED", resource["sid"])


async def test_a_dropped_connection_before_an_answer_is_not_sent_twice(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sender: Worker,
) -> None:
    _, thread = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    twilio.script(Drop())

    await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "Hm."})
    failed = await reached(api, thread["id"], 1, "FAILED")
    assert failed["error_code"] == "network_error"
    assert len(twilio.requests) == 1


async def test_a_long_sms_reply_is_stored_and_sent_as_one_message_per_twilio_message(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    provider: ByMessage,
    sender: Worker,
) -> None:
    sentence = "Your parcel left the depot and is on the van. "
    long_text = (sentence * 60).strip()  # 2,760 GSM-7 characters: more than Twilio's 1,600 in one message
    provider.answers = {"Where is it?": Step(text=long_text)}
    agent = await sms.prompt_agent(api)
    line = await twilio_line(api, twilio, agent)

    await sms.post_signed(twilio_side, line.sms_path, line.sms(body="Where is it?"), line.auth_token)
    (thread,) = await sms.threads_of_line(api, line)
    first = await reached(api, thread["id"], 1, "SENT")
    second = await reached(api, thread["id"], 2, "SENT")

    assert (first["metadata"]["part"], first["metadata"]["parts"]) == (1, 2)
    assert (second["metadata"]["part"], second["metadata"]["parts"]) == (2, 2)
    assert first["content"] + " " + second["content"] == long_text
    assert all(len(m["content"]) <= 1600 for m in (first, second))
    assert [request.form["Body"] for request in twilio.requests] == [first["content"], second["content"]]
    assert first["external_id"] != second["external_id"]
    assert first["iterations"] and not second["iterations"]  # the run's record stays on the first part
    assert first["segments"] == 10 and second["segments"] is not None


# ------------------------------------------------------------------------------------------ WhatsApp


async def whatsapp_line(api: httpx.AsyncClient, stand_in: WhatsAppStandIn, agent: dict[str, Any]) -> wa.Line:
    line, _ = await wa.whatsapp_line(
        api,
        agent=agent,
        phone_number_id=stand_in.phone_number_id,
        access_token=stand_in.access_token,
        api_base_url=stand_in.base_url,
    )
    return line


async def whatsapp_thread(
    api: httpx.AsyncClient, caller: httpx.AsyncClient, stand_in: WhatsAppStandIn
) -> tuple[wa.Line, dict[str, Any]]:
    """A WhatsApp line on ``stand_in`` routed to an agent that does not answer, and the thread a first
    message from the customer opened."""
    line = await whatsapp_line(api, stand_in, await sms.quiet_agent(api))
    r = await wa.post_signed(caller, line, line.notification(wa.wa_message("text", {"body": "hi"})))
    assert r.status_code == 200, r.text
    return line, await wa.the_thread(api, line)


async def meta_reports(
    client: httpx.AsyncClient, stand_in: WhatsAppStandIn, line: wa.Line, wamid: str, status: str, **extra: Any
) -> httpx.Response:
    return await wa.post_signed(client, line, stand_in.status_notification(wamid, status, **extra))


async def test_a_whatsapp_conversation_end_to_end(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    whatsapp: WhatsAppStandIn,
    provider: ByMessage,
    sender: Worker,
    sessionmaker: Any,
    tenant: Tenant,
) -> None:
    provider.answers = {"Do you ship to Lisbon?": Step(text="We do, in 2 to 3 days.")}
    agent = await sms.prompt_agent(api)
    line = await whatsapp_line(api, whatsapp, agent)

    r = await wa.post_signed(
        meta_side, line, line.notification(wa.wa_message("text", {"body": "Do you ship to Lisbon?"}))
    )
    assert r.status_code == 200, r.text
    thread = await wa.the_thread(api, line)
    assert (await message_at(api, thread["id"], 0))["status"] == "RECEIVED"

    reply = await reached(api, thread["id"], 1, "SENT")
    (sent,) = whatsapp.messages
    assert sent["to"] == "+" + wa.WA_ID
    assert (sent["type"], sent["text"]["body"]) == ("text", "We do, in 2 to 3 days.")
    assert sent["biz_opaque_callback_data"] == reply["id"]
    assert reply["external_id"] == sent["id"]
    assert reply["provider_account_id"] == whatsapp.phone_number_id

    # Out of order: the read receipt comes before the delivery report, and a "sent" comes last.
    for status in ("read", "delivered", "sent", "read"):
        assert (await meta_reports(meta_side, whatsapp, line, sent["id"], status)).status_code == 200
    done = await message_at(api, thread["id"], 1)
    assert done["status"] == "READ"
    assert done["read_at"] and done["delivered_at"] and done["sent_at"]
    assert await status_history(sessionmaker, tenant, reply["id"]) == ["QUEUED", "SENDING", "SENT", "READ"]

    # A forged notification is refused.
    forged = whatsapp.status_notification(sent["id"], "failed", errors=[{"code": 131047, "title": "Re-engagement"}])
    r = await wa.post_signed(meta_side, line, forged, secret="not-the-app-secret")
    assert r.status_code == 403
    assert (await message_at(api, thread["id"], 1))["status"] == "READ"

    r = await meta_side.get(f"/feather/api/v1/threads/{thread['id']}/messages", headers=feather(tenant))
    assert r.status_code == 200, r.text
    out = r.json()["thread"]["messages"][-1]
    assert (out["direction"], out["status"], out["twilioMessageSid"]) == ("OUTBOUND", "READ", sent["id"])
    assert out["sentAt"] and out["deliveredAt"] and out["readAt"]
    r = await meta_side.get(f"/altur/api/v1.0/message/{thread['id']}", headers=altur(tenant))
    assert r.status_code == 200, r.text
    assert [(m["thread_id"], m["sent_by"], m["content"], m["read"]) for m in r.json()] == [
        (thread["id"], "EU", "Do you ship to Lisbon?", False),
        (thread["id"], "AI", "We do, in 2 to 3 days.", True),
    ]


async def test_a_flow_on_whatsapp_sends_reply_buttons(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    whatsapp: WhatsAppStandIn,
    sender: Worker,
) -> None:
    version = {"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW, "settings": {"debounce_s": 0}}
    agent = await create_agent(api, name="Demo", version=version)
    line = await whatsapp_line(api, whatsapp, agent)

    await wa.post_signed(meta_side, line, line.notification(wa.wa_message("text", {"body": "hi"})))
    thread = await wa.the_thread(api, line)
    reply = await reached(api, thread["id"], 1, "SENT")

    (sent,) = whatsapp.messages
    assert reply["type"] == "button"
    assert sent["type"] == "interactive"
    assert sent["interactive"]["body"] == {"text": reply["content"]}
    assert [b["reply"] for b in sent["interactive"]["action"]["buttons"]] == [
        {"id": "sales", "title": "Talk to sales"},
        {"id": "support", "title": "Get support"},
    ]


async def test_a_whatsapp_outage_is_retried_then_fails_with_metas_error(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    whatsapp: WhatsAppStandIn,
    sender: Worker,
) -> None:
    line, thread = await whatsapp_thread(api, meta_side, whatsapp)
    whatsapp.script(GraphError.unavailable())
    whatsapp.default = GraphError.server_error(503)

    await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "Hello!"})
    failed = await reached(api, thread["id"], 1, "FAILED")
    assert len(whatsapp.requests) == 3
    assert failed["error_code"] is not None and failed["error_message"]
    assert line.access_token not in str(failed)


async def test_a_whatsapp_refusal_and_a_failed_status_are_recorded(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    whatsapp: WhatsAppStandIn,
    sender: Worker,
) -> None:
    line, thread = await whatsapp_thread(api, meta_side, whatsapp)
    whatsapp.script(GraphError.reengagement())

    for text in ("Still there?", "Ping."):
        await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": text})
    refused = await reached(api, thread["id"], 1, "FAILED")
    sent = await reached(api, thread["id"], 2, "SENT")
    assert refused["error_code"] == "131047"
    assert len(whatsapp.requests) == 2

    errors = [{"code": 131026, "title": "Message undeliverable"}]
    r = await meta_reports(meta_side, whatsapp, line, sent["external_id"], "failed", errors=errors)
    assert r.status_code == 200
    shown = await message_at(api, thread["id"], 2)
    assert (shown["status"], shown["error_code"]) == ("FAILED", "131026")


async def test_a_long_whatsapp_text_goes_as_messages_of_4096_characters_at_most(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    whatsapp: WhatsAppStandIn,
    sender: Worker,
) -> None:
    _, thread = await whatsapp_thread(api, meta_side, whatsapp)
    paragraph = "Opening hours vary by store; here is the full list. " * 30  # about 1,560 characters
    text = "\n\n".join([paragraph.strip()] * 4)

    r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": text})
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == {"part": 1, "parts": 2}
    await reached(api, thread["id"], 2, "SENT")
    bodies = [m["text"]["body"] for m in whatsapp.messages]
    assert len(bodies) == 2 and all(len(b) <= 4096 for b in bodies)
    assert "\n\n".join(bodies) == text


async def test_marking_an_end_users_whatsapp_messages_read_sends_one_read_receipt(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    whatsapp: WhatsAppStandIn,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sender: Worker,
    sessionmaker: Any,
    tenant: Tenant,
) -> None:
    line, thread = await whatsapp_thread(api, meta_side, whatsapp)
    second = wa.wa_message("text", {"body": "are you there?"})
    assert (await wa.post_signed(meta_side, line, line.notification(second))).status_code == 200
    await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "Yes!"})
    await reached(api, thread["id"], 2, "SENT")

    r = await api.post(f"/v1/threads/{thread['id']}/read", json={})
    assert r.status_code == 200, r.text

    async def receipt_sent() -> bool:
        return whatsapp.read_receipts == [second["id"]]  # the newest of theirs; WhatsApp ticks the earlier ones

    await until(receipt_sent)
    # Marked read again: nothing new to tell WhatsApp.
    assert (await api.post(f"/v1/threads/{thread['id']}/read", json={})).status_code == 200
    # An SMS thread has no read receipts: marking it read calls no provider.
    _, texted = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    assert (await api.post(f"/v1/threads/{texted['id']}/read", json={})).status_code == 200

    async def receipt_done() -> bool:
        return [j.state for j in await jobs_of(sessionmaker, tenant, RECEIPT_KIND)] == ["succeeded"]

    await until(receipt_done)  # one job, however often the thread was marked read
    assert whatsapp.read_receipts == [second["id"]] and twilio.requests == []


async def test_a_human_taking_over_holds_the_agents_queued_messages_but_not_the_operators(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sessionmaker: Any,
    settings: Settings,
    tenant: Tenant,
) -> None:
    _, thread = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    r = await api.post("/v1/users", json={"email": "sam@example.com", "first_name": "Sam"})
    user_id = r.json()["id"]
    # No worker yet: both wait in the queue, the agent's words and an operator's.
    agents = await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "AI says"})
    operators = await api.post(
        f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "user_id": user_id, "content": "Sam here"}
    )
    assert agents.json()["status"] == operators.json()["status"] == "QUEUED"

    r = await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})
    assert r.status_code == 200, r.text
    held = await message_at(api, thread["id"], 1)
    assert (held["status"], held["error_code"]) == ("FAILED", "human_handoff")
    assert await status_history(sessionmaker, tenant, held["id"]) == ["QUEUED", "FAILED"]

    async with running_worker(sessionmaker, channel_settings(settings)):
        await reached(api, thread["id"], 2, "SENT")
    assert [request.form["Body"] for request in twilio.requests] == ["Sam here"]


async def test_the_agents_own_handoff_message_goes_out(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sender: Worker,
) -> None:
    version = {"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW, "settings": {"debounce_s": 0}}
    # The handoff message meets a busy Twilio once: retried after the thread went to a human, it still goes.
    twilio.script(Accept(), Accept(), TwilioError.unavailable(retry_after=0))
    line, thread = await sms_thread(api, twilio_side, twilio, await create_agent(api, name="Demo", version=version))
    await reached(api, thread["id"], 1, "SENT")  # the greeting with its choices
    for index, text in ((3, "Talk to sales"), (5, "Ada Lovelace")):
        r = await sms.post_signed(twilio_side, line.sms_path, line.sms(body=text), line.auth_token)
        assert r.status_code == 200, r.text
        await reached(api, thread["id"], index, "SENT")

    bodies = [request.form["Body"] for request in twilio.requests]
    assert len(bodies) == 4 and bodies[-1] == bodies[-2]
    assert bodies[-1].startswith("Thanks, Ada Lovelace! I'm passing you to our sales team")
    assert (await api.get(f"/v1/threads/{thread['id']}")).json()["active"] is False


async def test_an_agent_message_waiting_to_be_tried_again_is_held_when_a_human_takes_over(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    twilio: TwilioStandIn,
    sessionmaker: Any,
    settings: Settings,
    tenant: Tenant,
) -> None:
    _, thread = await sms_thread(api, twilio_side, twilio, await sms.quiet_agent(api))
    twilio.script(TwilioError.unavailable(retry_after=60))  # busy: try again in a minute
    kinds = ("runs.execute", DELIVER_KIND)
    async with runs_worker(sessionmaker, channel_settings(settings), kinds=kinds, backoff_cap_s=60):
        await api.post(f"/v1/threads/{thread['id']}/messages", json={"role": "assistant", "content": "AI says"})
        await until(lambda: asyncio.sleep(0, len(twilio.requests) == 1))
        (job,) = await jobs_of(sessionmaker, tenant)
        assert (await message_at(api, thread["id"], 1))["status"] == "SENDING"

        # A human takes over during the wait; the job's next attempt comes, and does not send.
        assert (await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})).status_code == 200
        async with sessionmaker() as s, s.begin():
            await s.execute(update(Job).where(Job.id == job.id).values(run_at=utcnow()))
        held = await reached(api, thread["id"], 1, "FAILED")
    assert held["error_code"] == "human_handoff"
    assert len(twilio.requests) == 1
