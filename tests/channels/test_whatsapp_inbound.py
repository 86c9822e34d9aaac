"""The WhatsApp Cloud API webhook through HTTP: the verification handshake, notifications signed with a real
HMAC-SHA256 of the body (never with the code under test) carrying each message type and the statuses of
our messages, refused when forged, and each message stored once however often Meta delivers it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.channels.test_twilio_inbound import prompt_agent, quiet_agent
from tests.conftest import Tenant
from tests.dialects.conftest import ByMessage
from tests.factories import create_end_user, create_thread
from tests.fakes.whatsapp_server import WhatsAppStandIn
from tests.integrations.helpers import PHONE_NUMBER_ID, create_integration, sms_body, whatsapp_body
from tests.runs.conftest import until, worker  # noqa: F401 - fixture: a worker in this process
from tests.runs.scripted import Step
from threadline.channels.whatsapp import WhatsAppClient
from threadline.flows.send import append_message
from threadline.messages.service import NewMessage
from threadline.models import EndUser, Message
from threadline.models.enums import Role

HOST = "http://testserver"
WA_ID = "16315551181"
BUSINESS_NUMBER = "15550783881"


class Line:
    """A whatsapp integration and its secrets."""

    def __init__(self, body: dict[str, Any], integration: dict[str, Any]) -> None:
        self.id: str = integration["id"]
        self.phone_number_id: str = body["settings"]["phone_number_id"]
        self.access_token: str = body["secrets"]["access_token"]
        self.app_secret: str = body["secrets"]["app_secret"]
        self.verify_token: str = body["secrets"]["verify_token"]
        self.path = f"/channels/whatsapp/{self.id}/webhook"

    def notification(
        self,
        *messages: dict[str, Any],
        contacts: tuple[tuple[str, str], ...] = ((WA_ID, "Kerry Fisher"),),
        statuses: list[dict[str, Any]] | None = None,
        phone_number_id: str | None = None,
    ) -> dict[str, Any]:
        """A notification as Meta sends it: one entry, one ``messages`` change."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": BUSINESS_NUMBER,
                "phone_number_id": phone_number_id or self.phone_number_id,
            },
        }
        if messages:
            value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts]
            value["messages"] = list(messages)
        if statuses is not None:
            value["statuses"] = statuses
        change = {"value": value, "field": "messages"}
        return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [change]}]}


def new_wamid() -> str:
    return "wamid.HBgL" + secrets.token_urlsafe(30)


def wa_message(
    kind: str, payload: Any, *, sender: str = WA_ID, wamid: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid or new_wamid(),
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: payload,
        **extra,
    }


def signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


async def post_signed(
    client: httpx.AsyncClient, line: Line, document: dict[str, Any], *, secret: str | None = None
) -> httpx.Response:
    body = json.dumps(document).encode()
    headers = {"content-type": "application/json", "x-hub-signature-256": signature(secret or line.app_secret, body)}
    return await client.post(line.path, content=body, headers=headers)


async def whatsapp_line(
    api: httpx.AsyncClient, *, agent: dict[str, Any] | None = None, phone_number_id: str | None = None, **fields: Any
) -> tuple[Line, dict[str, Any]]:
    body = whatsapp_body(**fields)
    body["settings"]["phone_number_id"] = phone_number_id or PHONE_NUMBER_ID
    if agent is not None:
        body["agent_id"] = agent["id"]
    integration = await create_integration(api, body)
    return Line(body, integration), integration


async def the_thread(api: httpx.AsyncClient, line: Line) -> dict[str, Any]:
    r = await api.get("/v1/threads", params={"limit": 100})
    (thread,) = [t for t in r.json()["data"] if t["integration_id"] == line.id]
    return thread


async def messages_of(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def stored_count(sessionmaker: Any, tenant: Tenant) -> tuple[int, int]:
    """(end users, messages) of the tenant's workspace."""
    async with sessionmaker() as s:
        end_users = await s.scalar(select(func.count()).where(EndUser.workspace_id == tenant.workspace_id))
        messages = await s.scalar(select(func.count()).where(Message.workspace_id == tenant.workspace_id))
    return int(end_users or 0), int(messages or 0)


# ------------------------------------------------------------------------------------------ verification


async def test_the_verification_handshake_echoes_the_challenge_for_the_verify_token_only(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient
) -> None:
    line, _ = await whatsapp_line(api)
    handshake = {"hub.mode": "subscribe", "hub.verify_token": line.verify_token, "hub.challenge": "1158201444"}

    r = await meta_side.get(line.path, params=handshake)
    assert (r.status_code, r.text) == (200, "1158201444")
    assert r.headers["content-type"].startswith("text/plain")

    for wrong in (
        {**handshake, "hub.verify_token": secrets.token_urlsafe(16)},
        {**handshake, "hub.verify_token": line.verify_token[:-1]},
        {**handshake, "hub.mode": "unsubscribe"},
        {k: v for k, v in handshake.items() if k != "hub.verify_token"},
        {},
    ):
        r = await meta_side.get(line.path, params=wrong)
        assert r.status_code == 403, r.text
        assert line.verify_token not in r.text and "1158201444" not in r.text
    r = await meta_side.get(line.path, params={k: v for k, v in handshake.items() if k != "hub.challenge"})
    assert r.status_code == 400, r.text


async def test_unknown_disabled_or_other_type_integrations_are_the_same_404(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient
) -> None:
    line, _ = await whatsapp_line(api)
    disabled, _ = await whatsapp_line(api, enabled=False)
    sms = await create_integration(api, sms_body())
    answers = []
    for integration_id in ("01a2171e-6aa1-7062-9d2b-15165f223791", "nope", disabled.id, sms["id"]):
        path = f"/channels/whatsapp/{integration_id}/webhook"
        r = await meta_side.get(path, params={"hub.mode": "subscribe", "hub.verify_token": disabled.verify_token})
        answers.append((r.status_code, r.json()))
        body = json.dumps(line.notification(wa_message("text", {"body": "hi"}))).encode()
        r = await meta_side.post(path, content=body, headers={"x-hub-signature-256": signature(line.app_secret, body)})
        answers.append((r.status_code, r.json()))
    assert {status for status, _ in answers} == {404}
    assert len({repr(body) for _, body in answers}) == 1


# ------------------------------------------------------------------------------------------ messages


MEDIA_SHA = "29ed500fa64eb55fc19dc4124acb300e5dcca0f822a301ae99944db"

CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (the message as WhatsApp sends it, what is stored: type, content, attachments, metadata's whatsapp)
    "text": (
        wa_message("text", {"body": "Where is parcel 7?"}),
        {"type": "text", "content": "Where is parcel 7?", "attachments": [], "whatsapp": {"type": "text"}},
    ),
    "image": (
        wa_message("image", {"caption": "The damage", "mime_type": "image/jpeg", "sha256": MEDIA_SHA, "id": "1479537"}),
        {
            "type": "image",
            "content": "The damage",
            "attachments": [{"type": "image", "media_id": "1479537", "mime_type": "image/jpeg", "sha256": MEDIA_SHA}],
            "whatsapp": {"type": "image", "media_id": "1479537"},
        },
    ),
    "audio": (
        wa_message("audio", {"mime_type": "audio/ogg; codecs=opus", "sha256": MEDIA_SHA, "id": "2480", "voice": True}),
        {
            "type": "audio",
            "content": "",
            "attachments": [
                {
                    "type": "audio",
                    "media_id": "2480",
                    "mime_type": "audio/ogg; codecs=opus",
                    "sha256": MEDIA_SHA,
                    "voice": True,
                }
            ],
            "whatsapp": {"type": "audio", "media_id": "2480"},
        },
    ),
    "video": (
        wa_message("video", {"mime_type": "video/mp4", "sha256": MEDIA_SHA, "id": "3481"}),
        {
            "type": "video",
            "content": "",
            "attachments": [{"type": "video", "media_id": "3481", "mime_type": "video/mp4", "sha256": MEDIA_SHA}],
            "whatsapp": {"type": "video", "media_id": "3481"},
        },
    ),
    "document": (
        wa_message(
            "document",
            {
                "caption": "My invoice",
                "filename": "invoice-42.pdf",
                "mime_type": "application/pdf",
                "sha256": MEDIA_SHA,
                "id": "4482",
            },
        ),
        {
            "type": "document",
            "content": "My invoice",
            "attachments": [
                {
                    "type": "document",
                    "media_id": "4482",
                    "mime_type": "application/pdf",
                    "sha256": MEDIA_SHA,
                    "filename": "invoice-42.pdf",
                }
            ],
            "whatsapp": {"type": "document", "media_id": "4482"},
        },
    ),
    "sticker": (
        wa_message("sticker", {"mime_type": "image/webp", "sha256": MEDIA_SHA, "id": "5483", "animated": False}),
        {
            "type": "image",
            "content": "",
            "attachments": [
                {"type": "image", "media_id": "5483", "mime_type": "image/webp", "sha256": MEDIA_SHA, "animated": False}
            ],
            "whatsapp": {"type": "sticker", "media_id": "5483"},
        },
    ),
    "button": (
        wa_message("button", {"payload": "TRACK_ORDER", "text": "Track my order"}),
        {
            "type": "button",
            "content": "Track my order",
            "attachments": [],
            "whatsapp": {"type": "button", "button": {"payload": "TRACK_ORDER", "text": "Track my order"}},
        },
    ),
    "button_reply": (
        wa_message("interactive", {"type": "button_reply", "button_reply": {"id": "confirm", "title": "Yes, confirm"}}),
        {
            "type": "button",
            "content": "Yes, confirm",
            "attachments": [],
            "whatsapp": {
                "type": "interactive",
                "reply": {"type": "button_reply", "id": "confirm", "title": "Yes, confirm"},
            },
        },
    ),
    "list_reply": (
        wa_message(
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "slot-2", "title": "Tuesday 10:00", "description": "With Dr. Lee"},
            },
        ),
        {
            "type": "button",
            "content": "Tuesday 10:00",
            "attachments": [],
            "whatsapp": {
                "type": "interactive",
                "reply": {
                    "type": "list_reply",
                    "id": "slot-2",
                    "title": "Tuesday 10:00",
                    "description": "With Dr. Lee",
                },
            },
        },
    ),
    "location": (
        wa_message(
            "location", {"latitude": 37.7749, "longitude": -122.4194, "name": "Head office", "address": "1 Main St"}
        ),
        {
            "type": "text",
            "content": "Head office\n1 Main St\n37.7749, -122.4194",
            "attachments": [],
            "whatsapp": {"type": "location"},
        },
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_message_type_is_stored_received_as_our_type_with_media_as_references(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient, case: str
) -> None:
    agent = await quiet_agent(api)
    line, _ = await whatsapp_line(api, agent=agent)
    sent, expected = CASES[case]
    sent = {**sent, "id": new_wamid()}

    r = await post_signed(meta_side, line, line.notification(sent))

    assert (r.status_code, r.text) == (200, "")
    r = await api.get("/v1/end_users", params={"channel": "whatsapp", "address": "+" + WA_ID})
    (end_user,) = r.json()["data"]
    assert end_user["display_name"] == "Kerry Fisher"
    thread = await the_thread(api, line)
    assert (thread["agent_id"], thread["end_user_id"]) == (agent["id"], end_user["id"])
    (message,) = await messages_of(api, thread["id"])
    assert {k: message[k] for k in ("type", "content", "attachments", "media_url")} == {
        "type": expected["type"],
        "content": expected["content"],
        "attachments": expected["attachments"],
        "media_url": None,  # media stay references: nothing is downloaded
    }
    assert {k: message[k] for k in ("role", "direction", "status", "source", "external_id", "provider_account_id")} == {
        "role": "user",
        "direction": "INBOUND",
        "status": "RECEIVED",
        "source": "whatsapp",
        "external_id": sent["id"],
        "provider_account_id": line.phone_number_id,
    }
    whatsapp_meta = message["metadata"]["whatsapp"]
    assert whatsapp_meta["timestamp"] == sent["timestamp"]
    assert {k: whatsapp_meta[k] for k in expected["whatsapp"]} == expected["whatsapp"]


async def test_text_the_databases_refuse_is_stored_with_replacement_characters(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient
) -> None:
    line, _ = await whatsapp_line(api, agent=await quiet_agent(api))
    broken = wa_message("text", {"body": "nul\u0000 and half\ud83d a pair"})
    r = await post_signed(meta_side, line, line.notification(broken, contacts=((WA_ID, "K\u0000erry"),)))
    assert r.status_code == 200, r.text
    (message,) = await messages_of(api, (await the_thread(api, line))["id"])
    assert message["content"] == "nul\ufffd and half\ufffd a pair"
    r = await api.get("/v1/end_users", params={"channel": "whatsapp", "address": "+" + WA_ID})
    assert r.json()["data"][0]["display_name"] == "K\ufffderry"


async def test_a_reaction_is_recorded_but_starts_no_run(api: httpx.AsyncClient, meta_side: httpx.AsyncClient) -> None:
    line, _ = await whatsapp_line(api, agent=await prompt_agent(api))
    r = await post_signed(meta_side, line, line.notification(wa_message("text", {"body": "Noted with thanks"})))
    assert r.status_code == 200, r.text
    thread = await the_thread(api, line)
    (first,) = await messages_of(api, thread["id"])
    reaction = wa_message("reaction", {"message_id": first["external_id"], "emoji": "\U0001f44d"})
    r = await post_signed(meta_side, line, line.notification(reaction))
    assert r.status_code == 200, r.text
    _, stored = await messages_of(api, thread["id"])
    assert (stored["type"], stored["content"], stored["in_response_to"]) == ("text", "\U0001f44d", first["id"])
    runs = (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"]
    assert len(runs) == 1  # the text's run; the reaction asked for none


async def test_the_agent_answers_each_sender_of_a_notification_on_their_own_thread(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    provider: ByMessage,
    worker: Any,  # noqa: F811
) -> None:
    provider.answers = {"Hola": Step(text="Hola, Ana."), "Hello": Step(text="Hello, Ben.")}
    line, _ = await whatsapp_line(api, agent=await prompt_agent(api))
    document = line.notification(
        wa_message("text", {"body": "Hola"}, sender="34600111222"),
        wa_message("text", {"body": "Hello"}, sender="447700900123"),
        contacts=(("34600111222", "Ana"), ("447700900123", "Ben")),
    )

    r = await post_signed(meta_side, line, document)
    assert r.status_code == 200, r.text

    r = await api.get("/v1/threads", params={"limit": 100})
    threads = [t for t in r.json()["data"] if t["integration_id"] == line.id]
    assert len(threads) == 2

    async def answered() -> bool:
        return [len(await messages_of(api, t["id"])) for t in threads] == [2, 2]

    await until(answered)
    conversations = sorted([[(m["content"], m["status"]) for m in await messages_of(api, t["id"])] for t in threads])
    assert conversations == [
        [("Hello", "RECEIVED"), ("Hello, Ben.", "QUEUED")],
        [("Hola", "RECEIVED"), ("Hola, Ana.", "QUEUED")],
    ]


async def test_a_notification_delivered_again_is_stored_once_also_concurrently(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant
) -> None:
    line, _ = await whatsapp_line(api, agent=await quiet_agent(api))
    document = line.notification(wa_message("text", {"body": "Once"}))
    for _ in range(2):
        r = await post_signed(meta_side, line, document)
        assert r.status_code == 200, r.text
    assert await stored_count(sessionmaker, tenant) == (1, 1)

    other = line.notification(wa_message("text", {"body": "First words"}, sender="5511987654321"))
    answers = await asyncio.gather(*(post_signed(meta_side, line, other) for _ in range(6)))
    assert [r.status_code for r in answers] == [200] * 6
    assert await stored_count(sessionmaker, tenant) == (2, 2)

    # The same message twice in one notification, as well.
    twice = wa_message("text", {"body": "Echo"})
    r = await post_signed(meta_side, line, line.notification(twice, dict(twice)))
    assert r.status_code == 200, r.text
    assert await stored_count(sessionmaker, tenant) == (2, 3)


async def test_changes_for_another_number_or_other_fields_are_skipped(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant
) -> None:
    line, _ = await whatsapp_line(api, agent=await quiet_agent(api))
    r = await post_signed(
        meta_side, line, line.notification(wa_message("text", {"body": "hi"}), phone_number_id="999000111")
    )
    assert (r.status_code, r.text) == (200, "")
    account_update = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}]}],
    }
    r = await post_signed(meta_side, line, account_update)
    assert r.status_code == 200, r.text
    assert await stored_count(sessionmaker, tenant) == (0, 0)


# ------------------------------------------------------------------------------------------ refused requests


@pytest.mark.parametrize("forge", ["unsigned", "wrong_secret", "changed_body", "sha1", "not_hex"])
async def test_a_forged_or_unsigned_notification_is_403_and_stores_nothing(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    forge: str,
    channel_logs: list[dict[str, Any]],
) -> None:
    line, _ = await whatsapp_line(api, agent=await quiet_agent(api))
    body = json.dumps(line.notification(wa_message("text", {"body": "Refund me"}))).encode()
    headers = {"content-type": "application/json", "x-hub-signature-256": signature(line.app_secret, body)}
    if forge == "unsigned":
        del headers["x-hub-signature-256"]
    elif forge == "wrong_secret":
        headers["x-hub-signature-256"] = signature(secrets.token_hex(16), body)
    elif forge == "changed_body":
        body = body.replace(b"Refund me", b"Refund us")
    elif forge == "sha1":
        headers["x-hub-signature-256"] = "sha1=" + hmac.new(line.app_secret.encode(), body, hashlib.sha1).hexdigest()
    elif forge == "not_hex":
        headers["x-hub-signature-256"] = "sha256=" + "z" * 64

    r = await meta_side.post(line.path, content=body, headers=headers)

    assert r.status_code == 403, r.text
    assert await stored_count(sessionmaker, tenant) == (0, 0)
    refused = [] if forge == "unsigned" else ["channels.whatsapp.signature_refused"]
    assert [entry["event"] for entry in channel_logs] == refused
    for secret in (line.app_secret, line.access_token, line.verify_token):
        assert secret not in r.text and secret not in repr(channel_logs)


async def test_malformed_notifications_are_400_and_store_nothing(
    api: httpx.AsyncClient, meta_side: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant
) -> None:
    line, _ = await whatsapp_line(api, agent=await quiet_agent(api))
    good = wa_message("text", {"body": "fine"})
    cases: list[tuple[bytes, str | None]] = [
        (b"{not json", None),
        (b"[]", "body"),
        (json.dumps({"object": "whatsapp_business_account", "entry": {}}).encode(), "entry"),
        (json.dumps(line.notification(good, {k: v for k, v in good.items() if k != "id"})).encode(), "id"),
        (json.dumps(line.notification(good, wa_message("text", {"body": "x"}, sender="+1 555"))).encode(), "from"),
        (json.dumps(line.notification(good, wa_message("text", {}))).encode(), "body"),
        (
            json.dumps(
                line.notification(statuses=[{"id": new_wamid(), "status": "sent", "timestamp": "soon"}])
            ).encode(),
            "timestamp",
        ),
        (  # twelve digits, after year 9999: no datetime holds it
            json.dumps(
                line.notification(statuses=[{"id": new_wamid(), "status": "sent", "timestamp": "999999999999"}])
            ).encode(),
            "timestamp",
        ),
    ]
    for body, param in cases:
        headers = {"x-hub-signature-256": signature(line.app_secret, body)}
        r = await meta_side.post(line.path, content=body, headers=headers)
        assert r.status_code == 400, (body, r.text)
        if param is not None:
            assert r.json()["error"]["param"].endswith(param), r.text
    assert await stored_count(sessionmaker, tenant) == (0, 0)


# ------------------------------------------------------------------------------------------ statuses


async def sent_reply(
    api: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    line: Line,
    whatsapp: WhatsAppStandIn,
    agent: dict[str, Any],
) -> tuple[str, str, dict[str, Any]]:
    """An agent's reply on a WhatsApp thread of ``line``, sent through the stand-in: (its wamid, its /v1 path,
    the thread)."""
    async with WhatsAppClient(
        whatsapp.base_url, "v21.0", whatsapp.phone_number_id, whatsapp.access_token, allow_private=True
    ) as client:
        sent = await client.send(to="+" + WA_ID, kind="text", text="Your order shipped.")
    end_user = await create_end_user(api, channel="whatsapp", address="+" + WA_ID)
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"], integration_id=line.id)
    async with sessionmaker() as s, s.begin():
        appended = await append_message(
            s,
            workspace_id=tenant.workspace_id,
            thread_id=thread["id"],
            new=NewMessage(role=Role.ASSISTANT, content="Your order shipped.", external_id=sent.provider_id),
        )
        path = f"/v1/threads/{thread['id']}/messages/{appended.message.public_id}"
    return sent.provider_id, path, thread


async def test_statuses_move_our_message_to_delivered_and_read_and_a_late_sent_moves_nothing_back(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    whatsapp: WhatsAppStandIn,
) -> None:
    agent = await quiet_agent(api)
    line, _ = await whatsapp_line(
        api,
        agent=agent,
        access_token=whatsapp.access_token,
        phone_number_id=whatsapp.phone_number_id,
        api_base_url=whatsapp.base_url,
    )
    wamid, path, _ = await sent_reply(api, sessionmaker, tenant, line, whatsapp, agent)
    assert (await api.get(path)).json()["status"] == "QUEUED"
    moments = {"sent": 1_764_000_000, "delivered": 1_764_000_005, "read": 1_764_000_060}

    r = await post_signed(
        meta_side, line, whatsapp.status_notification(wamid, "delivered", timestamp=moments["delivered"])
    )
    assert (r.status_code, r.text) == (200, "")
    message = (await api.get(path)).json()
    assert message["status"] == "DELIVERED"
    assert message["delivered_at"] == _iso(moments["delivered"])
    assert message["provider_account_id"] == whatsapp.phone_number_id

    r = await post_signed(meta_side, line, whatsapp.status_notification(wamid, "read", timestamp=moments["read"]))
    assert r.status_code == 200, r.text
    r = await post_signed(meta_side, line, whatsapp.status_notification(wamid, "sent", timestamp=moments["sent"]))
    assert r.status_code == 200, r.text
    message = (await api.get(path)).json()
    assert message["status"] == "READ"
    assert (message["sent_at"], message["delivered_at"], message["read_at"]) == (
        _iso(moments["sent"]),
        _iso(moments["delivered"]),
        _iso(moments["read"]),
    )

    # An end user's answer that quotes our message is in response to it.
    answer = wa_message(
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "thanks", "title": "Thanks, got it"}},
        context={"from": BUSINESS_NUMBER, "id": wamid},
    )
    r = await post_signed(meta_side, line, line.notification(answer))
    assert r.status_code == 200, r.text
    thread_id = path.split("/")[3]
    stored = (await messages_of(api, thread_id))[-1]
    assert (stored["content"], stored["in_response_to"]) == ("Thanks, got it", path.rsplit("/", 1)[1])


async def test_a_failed_status_records_metas_error(
    api: httpx.AsyncClient,
    meta_side: httpx.AsyncClient,
    sessionmaker: Any,
    tenant: Tenant,
    whatsapp: WhatsAppStandIn,
) -> None:
    agent = await quiet_agent(api)
    line, _ = await whatsapp_line(
        api, agent=agent, access_token=whatsapp.access_token, phone_number_id=whatsapp.phone_number_id
    )
    wamid, path, _ = await sent_reply(api, sessionmaker, tenant, line, whatsapp, agent)
    errors = [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {
                "details": "Message failed to send because more than 24 hours have passed since the customer last "
                "replied to this number."
            },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
    ]
    r = await post_signed(meta_side, line, whatsapp.status_notification(wamid, "failed", errors=errors))
    assert r.status_code == 200, r.text
    message = (await api.get(path)).json()
    assert (message["status"], message["error_code"]) == ("FAILED", "131047")
    assert message["error_message"] == (
        "Re-engagement message: Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number."
    )
    assert message["failed_at"] is not None

    # Statuses of messages we do not know, or of no delivery step, are answered 200 and change nothing.
    unknown = {**whatsapp.status_notification(wamid, "delivered")}
    unknown["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = new_wamid()
    r = await post_signed(meta_side, line, unknown)
    assert r.status_code == 200, r.text
    r = await post_signed(meta_side, line, whatsapp.status_notification(wamid, "deleted"))
    assert r.status_code == 200, r.text
    assert (await api.get(path)).json()["status"] == "FAILED"


def _iso(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")
