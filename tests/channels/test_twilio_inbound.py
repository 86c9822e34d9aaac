"""Twilio's webhooks through HTTP: incoming SMS and status callbacks, signed with the `twilio` package's own
``RequestValidator`` (never with the code under test), refused when forged, and stored once when Twilio
delivers the same message again."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from tests.conftest import Tenant
from tests.dialects.conftest import ByMessage
from tests.factories import create_agent, create_end_user, create_thread
from tests.fakes.twilio_server import TwilioStandIn
from tests.integrations.helpers import FROM_NUMBER, create_integration, sms_body, whatsapp_body
from tests.runs.conftest import until, worker  # noqa: F401 - fixture: a worker in this process
from tests.runs.scripted import Step
from threadline.app import create_app
from threadline.channels import inbound
from threadline.channels.twilio import TwilioClient
from threadline.flows.send import append_message
from threadline.messages.service import NewMessage
from threadline.models import EndUser, Integration, Message
from threadline.models.enums import Role

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
HOST = "http://testserver"
CUSTOMER = "+15558675310"


class Line:
    """An sms integration (routed to an agent unless told otherwise) and what Twilio knows of it."""

    def __init__(self, integration: dict[str, Any], account_sid: str, auth_token: str) -> None:
        self.integration = integration
        self.id: str = integration["id"]
        self.account_sid = account_sid
        self.auth_token = auth_token

    @property
    def sms_path(self) -> str:
        return f"/channels/twilio/{self.id}/sms"

    @property
    def status_path(self) -> str:
        return f"/channels/twilio/{self.id}/status"

    def sms(
        self, *, sid: str | None = None, sender: str = CUSTOMER, body: str = "Hello", **extra: str
    ) -> dict[str, str]:
        """The parameters Twilio POSTs for an incoming SMS."""
        sid = sid or new_sid()
        params = {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "94105",
            "SmsSid": sid,
            "FromState": "CA",
            "SmsStatus": "received",
            "FromCity": "SAN FRANCISCO",
            "Body": body,
            "FromCountry": "US",
            "To": FROM_NUMBER,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        return {**params, **extra}


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def sign(token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


async def post_signed(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    token: str,
    *,
    signed_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``params`` form-encoded to ``path``, signed for ``signed_url`` (default: the URL it is sent to)."""
    signature = sign(token, signed_url or HOST + path, params)
    return await client.post(path, data=params, headers={**signature, **(headers or {})})


async def sms_line(
    api: httpx.AsyncClient,
    *,
    agent: dict[str, Any] | None = None,
    account_sid: str | None = None,
    auth_token: str | None = None,
    **fields: Any,
) -> Line:
    token = auth_token or secrets.token_hex(16)
    body = sms_body(auth_token=token, **fields)
    if account_sid is not None:
        body["settings"]["account_sid"] = account_sid
    if agent is not None:
        body["agent_id"] = agent["id"]
    integration = await create_integration(api, body)
    return Line(integration, body["settings"]["account_sid"], token)


async def prompt_agent(api: httpx.AsyncClient) -> dict[str, Any]:
    version = {
        "mode": "PROMPT",
        "provider": "openai",
        "model": "test-model",
        "system_prompt": "Hi.",
        "settings": {"debounce_s": 0},
    }
    return await create_agent(api, name="Concierge", version=version)


async def quiet_agent(api: httpx.AsyncClient) -> dict[str, Any]:
    """An agent without a version: its threads take messages and start no run (none is left queued for the
    workers of later tests to answer)."""
    return await create_agent(api, name="Quiet")


async def messages_of(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def threads_of_line(api: httpx.AsyncClient, line: Line) -> list[dict[str, Any]]:
    r = await api.get("/v1/threads", params={"limit": 100})
    assert r.status_code == 200, r.text
    return [t for t in r.json()["data"] if t["integration_id"] == line.id]


async def count_messages(sessionmaker: Any, line: Line) -> int:
    """Messages stored through ``line`` (those with a provider id)."""
    integration = select(Integration.id).where(Integration.public_id == uuid.UUID(line.id)).scalar_subquery()
    stmt = select(func.count()).select_from(Message).where(Message.integration_id == integration)
    async with sessionmaker() as s:
        return int((await s.execute(stmt.where(Message.external_id.is_not(None)))).scalar_one())


async def end_users_at(sessionmaker: Any, tenant: Tenant, address: str) -> list[EndUser]:
    async with sessionmaker() as s:
        stmt = select(EndUser).where(EndUser.workspace_id == tenant.workspace_id, EndUser.address == address)
        return list((await s.execute(stmt)).scalars())


# ------------------------------------------------------------------------------------------ incoming SMS


async def test_a_signed_sms_opens_a_thread_with_the_agent_and_is_stored_received_with_twilios_fields(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await prompt_agent(api)
    line = await sms_line(api, agent=agent)
    params = line.sms(body="Is my order on its way?")

    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)

    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert r.text == EMPTY_TWIML
    r = await api.get("/v1/end_users", params={"channel": "sms", "address": CUSTOMER})
    (end_user,) = r.json()["data"]
    assert (end_user["channel"], end_user["address"]) == ("sms", CUSTOMER)
    (thread,) = await threads_of_line(api, line)
    assert thread["agent_id"] == agent["id"]
    assert thread["end_user_id"] == end_user["id"]
    assert thread["agent_version_id"] == agent["current_version"]["id"]
    (message,) = await messages_of(api, thread["id"])
    assert {k: message[k] for k in ("role", "type", "content", "direction", "status", "source", "sent_by")} == {
        "role": "user",
        "type": "text",
        "content": "Is my order on its way?",
        "direction": "INBOUND",
        "status": "RECEIVED",
        "source": "sms",
        "sent_by": "end_user",
    }
    assert message["external_id"] == params["MessageSid"]
    assert message["provider_account_id"] == line.account_sid
    assert message["media_url"] is None and message["attachments"] == []
    assert message["metadata"] == {"twilio": {"num_media": 0, "to": FROM_NUMBER, "api_version": "2010-04-01"}}
    assert message["segments"] == 1

    # The next SMS from the same number continues the same thread, with the same end user.
    r = await post_signed(twilio_side, line.sms_path, line.sms(body="Still there?"), line.auth_token)
    assert r.status_code == 200, r.text
    assert [t["id"] for t in await threads_of_line(api, line)] == [thread["id"]]
    assert [m["content"] for m in await messages_of(api, thread["id"])] == ["Is my order on its way?", "Still there?"]
    r = await api.get("/v1/end_users", params={"channel": "sms", "address": CUSTOMER})
    assert [e["id"] for e in r.json()["data"]] == [end_user["id"]]


async def test_the_agent_answers_and_its_reply_is_queued_on_the_sms_thread(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    provider: ByMessage,
    worker: Any,  # noqa: F811
) -> None:
    provider.answers = {"When do you open?": Step(text="We open at nine.")}
    agent = await prompt_agent(api)
    line = await sms_line(api, agent=agent)

    r = await post_signed(twilio_side, line.sms_path, line.sms(body="When do you open?"), line.auth_token)
    assert r.status_code == 200, r.text

    (thread,) = await threads_of_line(api, line)

    async def answered() -> bool:
        return len(await messages_of(api, thread["id"])) == 2

    await until(answered)
    inbound_message, reply = await messages_of(api, thread["id"])
    assert (inbound_message["status"], inbound_message["direction"]) == ("RECEIVED", "INBOUND")
    assert (reply["role"], reply["content"], reply["direction"]) == ("assistant", "We open at nine.", "OUTBOUND")
    assert reply["status"] == "QUEUED"
    (asked,) = provider.asked("When do you open?")
    assert [(m.role, m.content) for m in asked.messages if m.role == "user"] == [("user", "When do you open?")]


async def test_media_become_the_message_type_media_url_and_attachments(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    photo = f"https://api.twilio.com/2010-04-01/Accounts/{line.account_sid}/Messages/MM1/Media/ME1"
    receipt = f"https://api.twilio.com/2010-04-01/Accounts/{line.account_sid}/Messages/MM1/Media/ME2"
    params = line.sms(
        body="Here is the damage",
        NumMedia="2",
        MediaUrl0=photo,
        MediaContentType0="image/jpeg",
        MediaUrl1=receipt,
        MediaContentType1="application/pdf",
    )
    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
    assert r.status_code == 200, r.text
    (thread,) = await threads_of_line(api, line)
    (message,) = await messages_of(api, thread["id"])
    assert (message["type"], message["content"], message["media_url"]) == ("image", "Here is the damage", photo)
    assert message["attachments"] == [
        {"type": "image", "url": photo, "content_type": "image/jpeg"},
        {"type": "document", "url": receipt, "content_type": "application/pdf"},
    ]

    for content_type, expected in (("audio/ogg", "audio"), ("video/mp4", "video"), ("text/vcard", "document")):
        params = line.sms(body="", NumMedia="1", MediaUrl0=photo, MediaContentType0=content_type)
        r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
        assert r.status_code == 200, r.text
        assert (await messages_of(api, thread["id"]))[-1]["type"] == expected


async def test_a_message_twilio_delivers_again_is_stored_once(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    params = line.sms(body="Once")
    for _ in range(3):
        r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
        assert (r.status_code, r.text) == (200, EMPTY_TWIML)
    (thread,) = await threads_of_line(api, line)
    assert [m["content"] for m in await messages_of(api, thread["id"])] == ["Once"]
    assert await count_messages(sessionmaker, line) == 1


async def test_concurrent_deliveries_of_a_first_message_store_one_end_user_thread_and_message(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    sender = "+15550001111"
    params = line.sms(body="At once", sender=sender)
    other = line.sms(body="Also at once", sender=sender)

    answers = await asyncio.gather(
        *(post_signed(twilio_side, line.sms_path, p, line.auth_token) for p in [params] * 6 + [other] * 2)
    )

    assert [(r.status_code, r.text) for r in answers] == [(200, EMPTY_TWIML)] * 8
    assert len(await end_users_at(sessionmaker, tenant, sender)) == 1
    (thread,) = await threads_of_line(api, line)
    assert sorted(m["content"] for m in await messages_of(api, thread["id"])) == ["Also at once", "At once"]


async def test_a_duplicate_that_passes_the_first_check_is_caught_under_the_senders_lock(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of two deliveries that both looked before either had stored the message: the second looks
    again once it holds the end user's lock, which the first held until it committed."""
    line = await sms_line(api, agent=await quiet_agent(api))
    params = line.sms(body="Raced")
    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
    assert r.status_code == 200, r.text

    real = inbound.InboundRepository.has_message
    calls: list[bool] = []

    async def blind_first_check(self: Any, integration_id: int, external_id: str) -> bool:
        found = await real(self, integration_id, external_id)
        calls.append(found)
        return found if len(calls) > 1 else False

    monkeypatch.setattr(inbound.InboundRepository, "has_message", blind_first_check)
    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
    assert (r.status_code, r.text) == (200, EMPTY_TWIML)
    assert calls == [True, True]  # the first check was made blind; the second, under the lock, saw the message
    assert await count_messages(sessionmaker, line) == 1
    (thread,) = await threads_of_line(api, line)
    r = await api.get(f"/v1/threads/{thread['id']}")
    assert r.json()["message_count"] == 1


# ------------------------------------------------------------------------------------------ refused requests


@pytest.mark.parametrize(
    "forge",
    ["unsigned", "wrong_token", "changed_body", "added_param", "removed_param", "other_url", "empty_signature"],
)
async def test_forged_stale_or_unsigned_sms_is_403_and_stores_nothing(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    forge: str,
    channel_logs: list[dict[str, Any]],
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    sender = "+1555" + str(secrets.randbelow(10**7)).zfill(7)
    params = line.sms(body="Transfer everything", sender=sender)
    url = HOST + line.sms_path
    headers = sign(line.auth_token, url, params)
    sent = dict(params)
    if forge == "unsigned":
        headers = {}
    elif forge == "empty_signature":
        headers = {"X-Twilio-Signature": ""}
    elif forge == "wrong_token":
        headers = sign(secrets.token_hex(16), url, params)
    elif forge == "changed_body":
        sent["Body"] = "Transfer nothing"
    elif forge == "added_param":
        sent["MediaUrl0"] = "https://evil.example/x.jpg"
    elif forge == "removed_param":
        del sent["FromCity"]
    elif forge == "other_url":
        headers = sign(line.auth_token, HOST + line.status_path, params)

    r = await twilio_side.post(line.sms_path, data=sent, headers=headers)

    assert r.status_code == 403, r.text
    assert r.json()["error"]["type"] == "permission_error"
    events = [entry["event"] for entry in channel_logs]
    assert events == ([] if forge in ("unsigned", "empty_signature") else ["channels.twilio.signature_refused"])
    assert line.auth_token not in r.text and line.auth_token not in repr(channel_logs)
    assert await end_users_at(sessionmaker, tenant, sender) == []
    assert await threads_of_line(api, line) == []


async def test_a_request_signed_by_another_account_is_403(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    params = line.sms(AccountSid="AC" + "9" * 32)
    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
    assert r.status_code == 403, r.text
    assert await threads_of_line(api, line) == []


async def test_unknown_disabled_or_other_type_integrations_are_the_same_404(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient
) -> None:
    agent = await quiet_agent(api)
    line = await sms_line(api, agent=agent)
    disabled = await sms_line(api, agent=agent, enabled=False)
    whatsapp = await create_integration(api, whatsapp_body(agent_id=agent["id"]))
    api_integration = await create_integration(api, {"type": "api", "name": "plain"})
    answers = []
    for integration_id in (str(uuid.uuid4()), "not-a-uuid", "1", disabled.id, whatsapp["id"], api_integration["id"]):
        for kind in ("sms", "status"):
            path = f"/channels/twilio/{integration_id}/{kind}"
            r = await post_signed(twilio_side, path, line.sms(), line.auth_token)
            answers.append((r.status_code, r.json()))
    assert {status for status, _ in answers} == {404}
    assert len({repr(body) for _, body in answers}) == 1  # nothing tells one case from another
    assert answers[0][1]["error"]["message"] == "no such channel endpoint"


async def test_malformed_bodies_are_400_and_store_nothing(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    for params, param in (
        ({k: v for k, v in line.sms().items() if k != "From"}, "From"),
        ({k: v for k, v in line.sms().items() if k != "MessageSid"}, "MessageSid"),
        (line.sms(sender="whatsapp:+15558675310"), "From"),
        (line.sms(NumMedia="two"), "NumMedia"),
        (line.sms(NumMedia="\u00b2"), "NumMedia"),  # a digit to str.isdigit, not to int()
        (line.sms(NumMedia="1"), "MediaUrl0"),
    ):
        r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param
    url = HOST + line.sms_path
    r = await twilio_side.post(
        line.sms_path, json=line.sms(), headers=sign(line.auth_token, url, line.sms())
    )  # JSON, not a form
    assert r.status_code == 400, r.text
    r = await twilio_side.post(
        line.sms_path,
        content=b"Body=%ff%fe",
        headers={"content-type": "application/x-www-form-urlencoded", **sign(line.auth_token, url, {})},
    )
    assert r.status_code == 400, r.text
    assert await count_messages(sessionmaker, line) == 0


class TwiceGiven(dict[str, list[str]]):
    """Parameters some of which are given more than once, as ``RequestValidator`` signs them (Flask's getall)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


async def test_ids_not_in_twilios_formats_or_given_twice_are_400_store_nothing_and_are_logged(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any, channel_logs: list[dict[str, Any]]
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    sid = new_sid()
    for params, param in (
        (line.sms(MessageSid="SM" + "ABCDEF" * 5 + "AB"), "MessageSid"),  # Twilio writes hex in lowercase
        (line.sms(MessageSid="SM" + "0" * 31), "MessageSid"),
        (line.sms(MessageSid="IM" + "0" * 32), "MessageSid"),
        (line.sms(MessageSid=sid + "NumMedia0"), "MessageSid"),
        (line.sms(MessageSid=sid + "\n"), "MessageSid"),
        (line.sms(sid=sid, SmsSid=new_sid()), "SmsSid"),  # the older names repeat MessageSid
        (line.sms(SmsMessageSid="SMx"), "SmsMessageSid"),
        (line.sms(MessagingServiceSid="MG" + "0" * 31), "MessagingServiceSid"),
        (line.sms(AccountSid=line.account_sid + "ApiVersion2010-04-01"), "AccountSid"),
    ):
        r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
        assert (r.status_code, r.json()["error"]["param"]) == (400, param), r.text
    twice = TwiceGiven({k: [v] for k, v in line.sms(sid=sid).items()}, MessageSid=[sid, new_sid()])
    signed = RequestValidator(line.auth_token).compute_signature(HOST + line.sms_path, twice)
    r = await twilio_side.post(line.sms_path, data=twice, headers={"X-Twilio-Signature": signed})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "MessageSid"), r.text
    assert "more than once" in r.json()["error"]["message"]

    status = {"AccountSid": line.account_sid, "MessageSid": sid, "MessageStatus": "delivered", "SmsSid": sid}
    for params, param in (
        ({**status, "MessageSid": sid + "MessageStatusdelivered"}, "MessageSid"),
        ({**status, "SmsSid": new_sid()}, "SmsSid"),
    ):
        r = await post_signed(twilio_side, line.status_path, params, line.auth_token)
        assert (r.status_code, r.json()["error"]["param"]) == (400, param), r.text
    assert await count_messages(sessionmaker, line) == 0
    assert {entry["event"] for entry in channel_logs} == {"channels.twilio.malformed_id"}
    assert all(entry["integration_id"] == line.id and sid not in repr(entry) for entry in channel_logs)

    # Twilio's own formats pass: an MMS sid, a messaging service, the status callback of a known format.
    mms = "MM" + secrets.token_hex(16)
    r = await post_signed(
        twilio_side, line.sms_path, line.sms(sid=mms, MessagingServiceSid="MG" + "0" * 32), line.auth_token
    )
    assert r.status_code == 200, r.text
    r = await post_signed(twilio_side, line.status_path, status, line.auth_token)
    assert r.status_code == 200, r.text
    assert await count_messages(sessionmaker, line) == 1


async def test_an_integration_without_an_agent_answers_503_so_twilio_tries_again(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, sessionmaker: Any
) -> None:
    line = await sms_line(api)
    params = line.sms(body="Is this line staffed?")
    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "channel_has_no_agent"
    assert await count_messages(sessionmaker, line) == 0

    agent = await quiet_agent(api)
    r = await api.patch(f"/v1/integrations/{line.id}", json={"agent_id": agent["id"]})
    assert r.status_code == 200, r.text
    r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
    assert r.status_code == 200, r.text
    assert await count_messages(sessionmaker, line) == 1


# ------------------------------------------------------------------------------------------ the signed URL


@pytest.fixture
async def app_with(settings: Any, engine: Any) -> AsyncIterator[Any]:
    """``app_with(**changes)``: a client of an app whose settings differ from the session's by ``changes``."""
    opened: list[httpx.AsyncClient] = []

    async def make(**changes: Any) -> httpx.AsyncClient:
        application = create_app(settings.replace(**changes), engine=engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=HOST)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


@pytest.mark.parametrize("base", ["https://chat.example.com", "https://chat.example.com/threadline/"])
async def test_public_base_url_is_the_url_checked_whatever_host_the_request_arrives_on(
    api: httpx.AsyncClient, app_with: Any, base: str
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    public = base.rstrip("/") + line.sms_path
    behind_proxy = await app_with(public_base_url=base)

    r = await post_signed(behind_proxy, line.sms_path, line.sms(), line.auth_token, signed_url=public)
    assert (r.status_code, r.text) == (200, EMPTY_TWIML)
    # Signed for the address the request arrived on, it is not what Twilio signed: refused.
    r = await post_signed(behind_proxy, line.sms_path, line.sms(), line.auth_token)
    assert r.status_code == 403, r.text
    # Twilio may sign with the default port written out.
    with_port = public.replace("chat.example.com", "chat.example.com:443")
    r = await post_signed(behind_proxy, line.sms_path, line.sms(), line.auth_token, signed_url=with_port)
    assert r.status_code == 200, r.text
    assert len(await threads_of_line(api, line)) == 1


async def test_forwarded_headers_are_honored_only_when_trusted(
    api: httpx.AsyncClient, app_with: Any, twilio_side: httpx.AsyncClient
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    public = "https://chat.example.com" + line.sms_path
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.com, proxy.internal"}
    trusting = await app_with(trust_forwarded_headers=True)

    r = await post_signed(trusting, line.sms_path, line.sms(), line.auth_token, signed_url=public, headers=forwarded)
    assert r.status_code == 200, r.text
    # The default app takes the URL as it arrived: a client cannot pick the URL checked with headers.
    r = await post_signed(twilio_side, line.sms_path, line.sms(), line.auth_token, signed_url=public, headers=forwarded)
    assert r.status_code == 403, r.text
    r = await post_signed(twilio_side, line.sms_path, line.sms(), line.auth_token, headers=forwarded)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------------------ status callbacks


async def outbound_on_line(
    api: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant, line: Line, agent: dict[str, Any], sid: str
) -> str:
    """An agent's reply on an SMS thread of ``line``, already handed to Twilio as ``sid``; its /v1 id."""
    end_user = await create_end_user(api, channel="sms", address="+1555" + str(secrets.randbelow(10**7)).zfill(7))
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"], integration_id=line.id)
    async with sessionmaker() as s, s.begin():
        appended = await append_message(
            s,
            workspace_id=tenant.workspace_id,
            thread_id=thread["id"],
            new=NewMessage(role=Role.ASSISTANT, content="Your order shipped.", external_id=sid),
        )
        return f"{thread['id']}/messages/{appended.message.public_id}"


async def test_status_callbacks_move_a_message_forward_never_back(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    twilio: TwilioStandIn,
) -> None:
    agent = await quiet_agent(api)
    line = await sms_line(
        api, agent=agent, account_sid=twilio.account_sid, auth_token=twilio.auth_token, api_base_url=twilio.base_url
    )
    callback = HOST + line.status_path
    async with TwilioClient(twilio.base_url, twilio.account_sid, twilio.auth_token, allow_private=True) as client:
        sent = await client.send_sms(
            to=CUSTOMER, body="Your order shipped.", from_number=FROM_NUMBER, status_callback=callback
        )
    where = await outbound_on_line(api, sessionmaker, tenant, line, agent, sent.provider_id)
    r = await api.get(f"/v1/threads/{where}")
    assert r.json()["status"] == "QUEUED"

    url, params = twilio.status_callback(sent.provider_id, "delivered")
    assert url == callback
    r = await post_signed(twilio_side, line.status_path, params, twilio.auth_token)
    assert (r.status_code, r.text) == (200, "")
    delivered = (await api.get(f"/v1/threads/{where}")).json()
    assert delivered["status"] == "DELIVERED"
    assert delivered["delivered_at"] is not None and delivered["sent_at"] is not None
    assert delivered["provider_account_id"] == twilio.account_sid

    # A late "sent" (Twilio's callbacks may arrive out of order) fills facts but moves nothing back.
    _, params = twilio.status_callback(sent.provider_id, "sent")
    r = await post_signed(
        twilio_side, line.status_path, {**params, "Price": "-0.00790", "PriceUnit": "USD"}, twilio.auth_token
    )
    assert r.status_code == 200, r.text
    late = (await api.get(f"/v1/threads/{where}")).json()
    assert late["status"] == "DELIVERED"
    assert late["delivered_at"] == delivered["delivered_at"]
    assert (late["price"], late["price_currency"]) == ("-0.00790", "USD")

    # Then read (WhatsApp through Twilio reports it): forward again.
    _, params = twilio.status_callback(sent.provider_id, "read")
    r = await post_signed(twilio_side, line.status_path, params, twilio.auth_token)
    assert r.status_code == 200, r.text
    assert (await api.get(f"/v1/threads/{where}")).json()["status"] == "READ"


async def test_an_undelivered_callback_records_twilios_error(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    twilio: TwilioStandIn,
) -> None:
    agent = await quiet_agent(api)
    line = await sms_line(api, agent=agent, account_sid=twilio.account_sid, auth_token=twilio.auth_token)
    async with TwilioClient(twilio.base_url, twilio.account_sid, twilio.auth_token, allow_private=True) as client:
        sent = await client.send_sms(to=CUSTOMER, body="Hi", from_number=FROM_NUMBER)
    where = await outbound_on_line(api, sessionmaker, tenant, line, agent, sent.provider_id)
    _, params = twilio.status_callback(sent.provider_id, "undelivered", error_code="30003")
    r = await post_signed(twilio_side, line.status_path, {**params, "NumSegments": "1"}, twilio.auth_token)
    assert r.status_code == 200, r.text
    message = (await api.get(f"/v1/threads/{where}")).json()
    assert (message["status"], message["error_code"], message["segments"]) == ("UNDELIVERED", "30003", 1)
    assert message["failed_at"] is not None


async def test_status_callbacks_for_unknown_messages_or_statuses_are_200_and_forged_ones_403(
    api: httpx.AsyncClient,
    twilio_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    twilio: TwilioStandIn,
) -> None:
    agent = await quiet_agent(api)
    line = await sms_line(api, agent=agent, account_sid=twilio.account_sid, auth_token=twilio.auth_token)
    async with TwilioClient(twilio.base_url, twilio.account_sid, twilio.auth_token, allow_private=True) as client:
        sent = await client.send_sms(to=CUSTOMER, body="Hi", from_number=FROM_NUMBER)
        stranger = await client.send_sms(to=CUSTOMER, body="Sent from elsewhere", from_number=FROM_NUMBER)
    where = await outbound_on_line(api, sessionmaker, tenant, line, agent, sent.provider_id)

    _, params = twilio.status_callback(stranger.provider_id, "delivered")
    r = await post_signed(twilio_side, line.status_path, params, twilio.auth_token)
    assert (r.status_code, r.text) == (200, "")
    _, params = twilio.status_callback(sent.provider_id, "receiving")
    r = await post_signed(twilio_side, line.status_path, params, twilio.auth_token)
    assert r.status_code == 200, r.text
    assert (await api.get(f"/v1/threads/{where}")).json()["status"] == "QUEUED"

    _, params = twilio.status_callback(sent.provider_id, "delivered")
    forged = sign(secrets.token_hex(16), HOST + line.status_path, params)
    r = await twilio_side.post(line.status_path, data=params, headers=forged)
    assert r.status_code == 403, r.text
    r = await twilio_side.post(line.status_path, data=params)
    assert r.status_code == 403, r.text
    tampered = {**params, "MessageStatus": "failed"}
    r = await twilio_side.post(
        line.status_path, data=tampered, headers=sign(twilio.auth_token, HOST + line.status_path, params)
    )
    assert r.status_code == 403, r.text
    assert (await api.get(f"/v1/threads/{where}")).json()["status"] == "QUEUED"
    r = await post_signed(twilio_side, line.status_path, {**params, "MessageStatus": ""}, twilio.auth_token)
    assert r.status_code == 400, r.text


async def test_no_secret_reaches_a_response_or_a_log_line(
    api: httpx.AsyncClient, twilio_side: httpx.AsyncClient, channel_logs: list[dict[str, Any]]
) -> None:
    line = await sms_line(api, agent=await quiet_agent(api))
    texts = []
    for params, headers in (
        (line.sms(), sign(line.auth_token, HOST + line.sms_path, line.sms(body="other"))),
        (line.sms(AccountSid="AC" + "1" * 32), None),
        (line.sms(), None),
        (line.sms(), None),
    ):
        if headers is None:
            r = await post_signed(twilio_side, line.sms_path, params, line.auth_token)
        else:
            r = await twilio_side.post(line.sms_path, data=params, headers=headers)
        texts.append(r.text)
    assert [entry["event"] for entry in channel_logs] == [
        "channels.twilio.signature_refused",
        "channels.twilio.other_account",
    ]
    assert all(entry["integration_id"] == line.id for entry in channel_logs)
    assert line.auth_token not in repr(channel_logs)
    assert all(line.auth_token not in text for text in texts)
