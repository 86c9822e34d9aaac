"""The Twilio and WhatsApp clients against their stand-ins: the request each provider expects, the answer
read right, every failure classified (retryable or not, the provider's code and message kept, Retry-After),
and no secret in any error, repr or log line."""

from __future__ import annotations

import base64
import email.utils
import logging
import pickle
import socket
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.twilio_server import Accept, Drop, Reply, TwilioError, TwilioStandIn
from tests.fakes.whatsapp_server import Accept as GraphAccept
from tests.fakes.whatsapp_server import GraphError, WhatsAppStandIn
from threadline.channels.errors import ChannelError, parse_retry_after
from threadline.channels.segments import split_whatsapp_text
from threadline.channels.sender import SentMessage
from threadline.channels.twilio import TwilioClient
from threadline.channels.whatsapp import ReplyButton, Template, WhatsAppClient

TO = "+15558675310"
FROM = "+15017122661"
SERVICE = "MG" + "a" * 32
CALLBACK = "https://threadline.example.com/channels/twilio/1f0c/status"


def twilio_client(server: TwilioStandIn, **kwargs: Any) -> TwilioClient:
    options: dict[str, Any] = {"allow_private": True, "timeout_s": 5.0, **kwargs}
    token = options.pop("auth_token", server.auth_token)
    return TwilioClient(server.base_url, server.account_sid, token, **options)


def whatsapp_client(server: WhatsAppStandIn, **kwargs: Any) -> WhatsAppClient:
    options: dict[str, Any] = {"allow_private": True, "timeout_s": 5.0, **kwargs}
    token = options.pop("access_token", server.access_token)
    return WhatsAppClient(server.base_url, "v21.0", server.phone_number_id, token, **options)


async def twilio_failure(client: TwilioClient, **kwargs: Any) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await client.send_sms(to=TO, body="Hello", from_number=FROM, **kwargs)
    return caught.value


async def whatsapp_failure(client: WhatsAppClient, **kwargs: Any) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await client.send(to=TO, **({"kind": "text", "text": "Hello"} | kwargs))
    return caught.value


def assert_secret_absent(secret: str, *texts: object) -> None:
    for text in texts:
        assert secret not in str(text)
        assert secret not in repr(text)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ================================================================================================= Twilio


async def test_twilio_send_from_a_number(twilio: TwilioStandIn) -> None:
    sent = await twilio_client(twilio).send_sms(to=TO, body="Hello there", from_number=FROM, status_callback=CALLBACK)

    [request] = twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form_lists == {"To": [TO], "Body": ["Hello there"], "From": [FROM], "StatusCallback": [CALLBACK]}
    assert request.basic_auth == (twilio.account_sid, twilio.auth_token)
    assert request.headers["user-agent"].startswith("threadline/")

    [resource] = twilio.messages
    assert resource["num_segments"] == "1" and resource["price"] is None
    assert sent == SentMessage(
        provider_id=resource["sid"],
        account_id=twilio.account_sid,
        segments=1,
        price=None,
        price_currency="USD",
        status="queued",
    )
    assert sent.provider_id.startswith("SM") and len(sent.provider_id) == 34


async def test_twilio_send_through_a_messaging_service(twilio: TwilioStandIn) -> None:
    sent = await twilio_client(twilio).send_sms(to=TO, body="Hi", messaging_service_sid=SERVICE)

    [request] = twilio.requests
    assert request.form == {"To": TO, "Body": "Hi", "MessagingServiceSid": SERVICE}
    # Twilio answers num_segments "0" until it has picked a sender: not known yet, not zero.
    assert twilio.messages[0]["num_segments"] == "0"
    assert (sent.segments, sent.status) == (None, "accepted")


async def test_twilio_segments_and_price_as_reported(twilio: TwilioStandIn) -> None:
    client = twilio_client(twilio)
    long = await client.send_sms(to=TO, body="x" * 161, from_number=FROM)
    twilio.script(Accept(num_segments="3", price="-0.02370", price_unit="EUR", status="sent"))
    priced = await client.send_sms(to=TO, body="Hi", from_number=FROM)

    assert long.segments == 2
    assert (priced.segments, priced.price, priced.price_currency, priced.status) == (3, "-0.02370", "EUR", "sent")


async def test_twilio_body_goes_as_unicode(twilio: TwilioStandIn) -> None:
    body = "Grüße € [x] 👋🏽 你好"
    await twilio_client(twilio).send_sms(to=TO, body=body + "\ud83d", from_number=FROM)
    # A lone surrogate (broken input) cannot be encoded: it goes as U+FFFD, the rest intact.
    assert twilio.requests[0].form["Body"] == body + "\ufffd"


async def test_twilio_one_client_sends_several(twilio: TwilioStandIn) -> None:
    async with twilio_client(twilio) as client:
        first = await client.send_sms(to=TO, body="one", from_number=FROM)
        second = await client.send_sms(to=TO, body="two", from_number=FROM)
    assert first.provider_id != second.provider_id
    assert [r.form["Body"] for r in twilio.requests] == ["one", "two"]
    # closed: the next call makes its own connection
    assert (await client.send_sms(to=TO, body="three", from_number=FROM)).status == "queued"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"from_number": FROM, "messaging_service_sid": SERVICE}],
    ids=["neither", "both"],
)
async def test_twilio_sender_must_be_one(twilio: TwilioStandIn, kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await twilio_client(twilio).send_sms(to=TO, body="Hi", **kwargs)
    assert twilio.requests == []


@pytest.mark.parametrize(
    ("answer", "code", "status", "retryable"),
    [
        (TwilioError.invalid_to(TO), "21211", 400, False),
        (TwilioError(400, 21610, "Attempt to send to unsubscribed recipient"), "21610", 400, False),
        (TwilioError(403, 20003, "Permission Denied"), "20003", 403, False),
        (TwilioError.rate_limited(), "20429", 429, True),
        (TwilioError.server_error(), "20500", 500, True),
        (TwilioError.unavailable(), "20503", 503, True),
        (Reply(502, b"<html>Bad Gateway</html>"), "http_502", 502, True),
        (Reply(404, {"unexpected": True}), "http_404", 404, False),
    ],
    ids=["invalid-to", "unsubscribed", "forbidden", "429", "500", "503", "proxy-502", "no-twilio-body"],
)
async def test_twilio_failures_classified(
    twilio: TwilioStandIn, answer: Any, code: str, status: int, retryable: bool
) -> None:
    twilio.script(answer)
    error = await twilio_failure(twilio_client(twilio))
    assert (error.code, error.status, error.retryable) == (code, status, retryable)
    if isinstance(answer, TwilioError):
        assert error.message == answer.message
    elif isinstance(answer.body, bytes):
        assert error.message == "<html>Bad Gateway</html>"
    assert error.retry_after_s is None


async def test_twilio_request_twilio_refuses(twilio: TwilioStandIn) -> None:
    with pytest.raises(ChannelError) as caught:
        await twilio_client(twilio).send_sms(to="5558675310", body="Hi", from_number=FROM)
    error = caught.value
    assert (error.code, error.status, error.retryable) == ("21211", 400, False)
    assert error.message == "The 'To' number 5558675310 is not a valid phone number."


async def test_twilio_wrong_credentials(twilio: TwilioStandIn) -> None:
    token = "0123456789abcdef-not-the-token"
    error = await twilio_failure(twilio_client(twilio, auth_token=token))
    assert (error.code, error.message, error.status, error.retryable) == ("20003", "Authenticate", 401, False)
    assert twilio.requests[0].basic_auth == (twilio.account_sid, token)
    assert_secret_absent(token, error, error.message)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5)],
)
async def test_twilio_retry_after_seconds(twilio: TwilioStandIn, header: str, expected: float) -> None:
    twilio.script(TwilioError.rate_limited(retry_after=header))
    error = await twilio_failure(twilio_client(twilio))
    assert (error.retryable, error.retry_after_s) == (True, expected)


async def test_twilio_retry_after_date(twilio: TwilioStandIn) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    twilio.script(TwilioError.unavailable(retry_after=email.utils.format_datetime(later, usegmt=True)))
    error = await twilio_failure(twilio_client(twilio))
    assert error.retryable
    assert error.retry_after_s is not None and 3000 < error.retry_after_s <= 3600


async def test_twilio_dropped_connection_is_retryable(twilio: TwilioStandIn) -> None:
    twilio.script(Drop())
    error = await twilio_failure(twilio_client(twilio))
    assert (error.code, error.retryable, error.status) == ("network_error", True, None)
    assert error.maybe_sent  # the request went out: the provider may have taken it


async def test_twilio_slow_answer_times_out(twilio: TwilioStandIn) -> None:
    twilio.script(Accept(delay_s=30))
    error = await twilio_failure(twilio_client(twilio, timeout_s=0.3))
    assert (error.code, error.retryable, error.status, error.maybe_sent) == ("timeout", True, None, True)
    assert error.message == "twilio did not answer within 0.3 s"


async def test_twilio_unreachable_is_retryable() -> None:
    client = TwilioClient(f"http://127.0.0.1:{closed_port()}", "AC" + "0" * 32, "token", allow_private=True)
    error = await twilio_failure(client)
    assert (error.code, error.retryable, error.maybe_sent) == ("connect_error", True, False)


async def test_twilio_guard_refuses_private_addresses_by_default(twilio: TwilioStandIn) -> None:
    client = TwilioClient(twilio.base_url, twilio.account_sid, twilio.auth_token)
    error = await twilio_failure(client)
    assert (error.code, error.retryable) == ("address_refused", False)
    assert "127.0.0.1" in error.message and "public address" in error.message
    assert twilio.requests == []


@pytest.mark.parametrize("base_url", ["ftp://api.twilio.example", "https://user:pw@api.twilio.example", "nope"])
async def test_twilio_unusable_base_url(base_url: str) -> None:
    error = await twilio_failure(TwilioClient(base_url, "AC" + "0" * 32, "token"))
    assert (error.code, error.retryable) == ("invalid_base_url", False)


async def test_twilio_success_without_a_sid_is_not_retried(twilio: TwilioStandIn) -> None:
    twilio.script(Reply(201, {"status": "queued"}))
    error = await twilio_failure(twilio_client(twilio))
    assert (error.code, error.retryable, error.status) == ("invalid_response", False, 201)


async def test_twilio_token_never_shows(twilio: TwilioStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = twilio.auth_token
    basic = base64.b64encode(f"{twilio.account_sid}:{token}".encode()).decode()
    client = twilio_client(twilio)
    # A provider (or a proxy) that echoes the credentials back: they are scrubbed from what we keep.
    twilio.script(
        Reply(400, {"code": 21601, "message": f"rejected {token} ({basic})", "status": 400}),
        Reply(502, f"<pre>Authorization: Basic {basic} token={token}</pre>".encode()),
        Drop(),
        Accept(delay_s=30),
    )
    errors = [await twilio_failure(client), await twilio_failure(client), await twilio_failure(client)]
    errors.append(await twilio_failure(twilio_client(twilio, timeout_s=0.2)))
    sent = await client.send_sms(to=TO, body="Hi", from_number=FROM)

    assert errors[0].message == "rejected [redacted] ([redacted])"
    assert "[redacted]" in errors[1].message
    for error in errors:
        assert_secret_absent(token, error, error.message, error.args)
        assert_secret_absent(basic, error, error.message, error.args)
        assert token not in "".join(traceback.format_exception(error))  # chained exceptions included
    assert_secret_absent(token, client, sent)
    assert token not in caplog.text and basic not in caplog.text
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records)  # httpx did log the requests


async def test_twilio_stand_in_status_callback(twilio: TwilioStandIn) -> None:
    client = twilio_client(twilio)
    sent = await client.send_sms(to=TO, body="Hi", messaging_service_sid=SERVICE, status_callback=CALLBACK)
    url, params = twilio.status_callback(sent.provider_id, "undelivered", error_code="30003")
    assert url == CALLBACK
    assert params == {
        "AccountSid": twilio.account_sid,
        "ApiVersion": "2010-04-01",
        "From": FROM,
        "MessageSid": sent.provider_id,
        "MessageStatus": "undelivered",
        "SmsSid": sent.provider_id,
        "SmsStatus": "undelivered",
        "To": TO,
        "MessagingServiceSid": SERVICE,
        "ErrorCode": "30003",
    }


# =============================================================================================== WhatsApp


async def test_whatsapp_send_text(whatsapp: WhatsAppStandIn) -> None:
    sent = await whatsapp_client(whatsapp).send(to="+1 555-123-4567", kind="text", text="Hello there")

    [request] = whatsapp.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{whatsapp.phone_number_id}/messages"
    assert request.headers["authorization"] == f"Bearer {whatsapp.access_token}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+1 555-123-4567",
        "type": "text",
        "text": {"preview_url": False, "body": "Hello there"},
    }
    [message] = whatsapp.messages
    assert sent == SentMessage(
        provider_id=message["id"],
        account_id=whatsapp.phone_number_id,
        segments=None,
        price=None,
        price_currency=None,
        status="accepted",
        recipient_id="15551234567",
    )
    assert sent.provider_id.startswith("wamid.")


async def test_whatsapp_text_keeps_every_character(whatsapp: WhatsAppStandIn) -> None:
    text = 'Grüße € "quoted" \\ 👋🏽 👨\u200d👩\u200d👧 你好\n\nnew paragraph'
    await whatsapp_client(whatsapp).send(to=TO, kind="text", text=text, preview_url=True)
    assert whatsapp.requests[0].json["text"] == {"preview_url": True, "body": text}


@pytest.mark.parametrize(
    ("kind", "kwargs", "content"),
    [
        (
            "image",
            {"media_url": "https://cdn.example/a.jpg", "text": "Look"},
            {"link": "https://cdn.example/a.jpg", "caption": "Look"},
        ),
        ("image", {"media_url": "https://cdn.example/a.jpg"}, {"link": "https://cdn.example/a.jpg"}),
        ("audio", {"media_url": "https://cdn.example/a.ogg"}, {"link": "https://cdn.example/a.ogg"}),
        (
            "video",
            {"media_url": "https://cdn.example/a.mp4", "text": "Watch"},
            {"link": "https://cdn.example/a.mp4", "caption": "Watch"},
        ),
        (
            "document",
            {"media_url": "https://cdn.example/a.pdf", "text": "Your invoice", "filename": "invoice.pdf"},
            {"link": "https://cdn.example/a.pdf", "caption": "Your invoice", "filename": "invoice.pdf"},
        ),
    ],
    ids=["image", "image-no-caption", "audio", "video", "document"],
)
async def test_whatsapp_send_media(
    whatsapp: WhatsAppStandIn, kind: Any, kwargs: dict[str, Any], content: dict[str, str]
) -> None:
    sent = await whatsapp_client(whatsapp).send(to=TO, kind=kind, **kwargs)
    body = whatsapp.requests[0].json
    assert (body["type"], body[kind]) == (kind, content)
    assert set(body) == {"messaging_product", "recipient_type", "to", "type", kind}
    assert sent.provider_id == whatsapp.messages[0]["id"]


async def test_whatsapp_send_buttons(whatsapp: WhatsAppStandIn) -> None:
    buttons: list[ReplyButton | tuple[str, str]] = [ReplyButton("yes", "Yes please"), ("no", "No thanks")]
    await whatsapp_client(whatsapp).send(to=TO, kind="interactive_buttons", text="Book it?", buttons=buttons)
    body = whatsapp.requests[0].json
    assert body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "button",
        "body": {"text": "Book it?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "yes", "title": "Yes please"}},
                {"type": "reply", "reply": {"id": "no", "title": "No thanks"}},
            ]
        },
    }


async def test_whatsapp_send_template(whatsapp: WhatsAppStandIn) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}]
    client = whatsapp_client(whatsapp)
    sent = await client.send(to=TO, kind="template", template=Template("welcome", "en_GB", components))
    raw = {"name": "hello_world", "language": {"code": "en_US"}}
    await client.send(to=TO, kind="template", template=raw)

    assert whatsapp.requests[0].json["template"] == {
        "name": "welcome",
        "language": {"code": "en_GB"},
        "components": components,
    }
    assert whatsapp.requests[1].json["template"] == raw
    assert sent.status == "accepted"


async def test_whatsapp_status_and_wa_id_as_reported(whatsapp: WhatsAppStandIn) -> None:
    whatsapp.script(GraphAccept(wa_id="5511987654321", message_status="held_for_quality_assessment"))
    sent = await whatsapp_client(whatsapp).send(to="+55 11 8765-4321", kind="text", text="Oi")
    assert (sent.recipient_id, sent.status) == ("5511987654321", "held_for_quality_assessment")


async def test_whatsapp_reply_to(whatsapp: WhatsAppStandIn) -> None:
    await whatsapp_client(whatsapp).send(to=TO, kind="text", text="Sure", reply_to="wamid.IN123")
    assert whatsapp.requests[0].json["context"] == {"message_id": "wamid.IN123"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "sticker", "text": "x"}, "unknown message kind"),
        ({"kind": "text"}, "needs text"),
        ({"kind": "image"}, "need a media_url"),
        ({"kind": "audio", "media_url": "https://cdn.example/a.ogg", "text": "x"}, "take no text"),
        ({"kind": "image", "media_url": "https://cdn.example/a.jpg", "filename": "a.jpg"}, "only a document"),
        ({"kind": "interactive_buttons", "text": "Pick"}, "needs buttons"),
        ({"kind": "interactive_buttons", "buttons": [("a", "A")]}, "needs text"),
        ({"kind": "template"}, "needs a template"),
    ],
)
async def test_whatsapp_what_a_kind_needs(whatsapp: WhatsAppStandIn, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await whatsapp_client(whatsapp).send(to=TO, **kwargs)
    assert whatsapp.requests == []


@pytest.mark.parametrize(
    ("answer", "code", "status", "retryable"),
    [
        (GraphError.reengagement(), "131047", 400, False),
        (GraphError.undeliverable(), "131026", 400, False),
        (GraphError(400, 100, "(#100) Invalid parameter", "Param to is invalid"), "100", 400, False),
        (GraphError(403, 10, "(#10) Application does not have permission for this action"), "10", 403, False),
        (GraphError(500, 3, "(#3) Application does not have the capability to make this API call."), "3", 500, False),
        (GraphError.rate_limited(), "130429", 429, True),
        (GraphError.rate_limited(status=400), "130429", 400, True),
        (GraphError(400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"), "131056", 400,
         True),
        (GraphError(400, 4, "(#4) Application request limit reached"), "4", 400, True),
        (GraphError.server_error(), "131000", 500, True),
        (GraphError.unavailable(), "131016", 503, True),
        (Reply(502, b"<html>Bad Gateway</html>"), "http_502", 502, True),
    ],
    ids=[
        "reengagement", "undeliverable", "invalid-parameter", "permission", "api-method-500", "throughput-429",
        "throughput-400", "pair-rate", "app-rate", "something-wrong", "unavailable", "proxy-502",
    ],
)  # fmt: skip
async def test_whatsapp_failures_classified(
    whatsapp: WhatsAppStandIn, answer: Any, code: str, status: int, retryable: bool
) -> None:
    whatsapp.script(answer)
    error = await whatsapp_failure(whatsapp_client(whatsapp))
    assert (error.code, error.status, error.retryable) == (code, status, retryable)
    if isinstance(answer, GraphError):
        details = answer.details
        expected = answer.message if details is None or details in answer.message else f"{answer.message}: {details}"
        assert error.message == expected
        assert error.trace_id is not None and error.trace_id.startswith("A")
    else:
        assert (error.message, error.trace_id) == ("<html>Bad Gateway</html>", None)


async def test_whatsapp_message_not_repeated_when_details_say_the_same(whatsapp: WhatsAppStandIn) -> None:
    whatsapp.script(GraphError.server_error())  # details "Something went wrong" are in the message already
    error = await whatsapp_failure(whatsapp_client(whatsapp))
    assert error.message == "(#131000) Something went wrong"


async def test_whatsapp_bodies_the_api_refuses(whatsapp: WhatsAppStandIn) -> None:
    client = whatsapp_client(whatsapp)
    too_long = await whatsapp_failure(client, text="a" * 4097)
    title = await whatsapp_failure(client, kind="interactive_buttons", text="Pick", buttons=[("a", "x" * 21)])
    four = await whatsapp_failure(
        client, kind="interactive_buttons", text="Pick", buttons=[(str(i), str(i)) for i in range(4)]
    )
    assert (too_long.code, too_long.status, too_long.retryable) == ("100", 400, False)
    assert too_long.message == "(#100) Invalid parameter: Param text['body'] must be at most 4096 characters long."
    assert (title.code, title.retryable) == ("131009", False)
    assert "Button title length invalid" in title.message
    assert (four.code, four.retryable) == ("131009", False)


async def test_whatsapp_split_text_is_accepted(whatsapp: WhatsAppStandIn) -> None:
    text = ("Ünïcødé sentence with an emoji 👋🏽. " * 400).strip()  # ~14,000 UTF-16 code units
    parts = split_whatsapp_text(text)
    assert len(parts) == 4
    async with whatsapp_client(whatsapp) as client:
        for part in parts:
            await client.send(to=TO, kind="text", text=part)
    assert [m["text"]["body"] for m in whatsapp.messages] == parts


async def test_whatsapp_unknown_template(whatsapp: WhatsAppStandIn) -> None:
    whatsapp.templates = {"hello_world"}
    error = await whatsapp_failure(whatsapp_client(whatsapp), kind="template", template=Template("nope"))
    assert (error.code, error.status, error.retryable) == ("132001", 404, False)


async def test_whatsapp_other_phone_number(whatsapp: WhatsAppStandIn) -> None:
    client = WhatsAppClient(whatsapp.base_url, "v21.0", "999", whatsapp.access_token, allow_private=True)
    error = await whatsapp_failure(client)
    assert (error.code, error.status, error.retryable) == ("100", 400, False)
    assert "Object with ID '999' does not exist" in error.message


async def test_whatsapp_wrong_token(whatsapp: WhatsAppStandIn) -> None:
    token = "EAAGwrongtoken0123456789"
    error = await whatsapp_failure(whatsapp_client(whatsapp, access_token=token))
    assert (error.code, error.status, error.retryable) == ("190", 401, False)
    assert error.message == "Invalid OAuth access token - Cannot parse access token"
    assert whatsapp.requests[0].bearer_token == token
    assert_secret_absent(token, error, error.message)


async def test_whatsapp_retry_after(whatsapp: WhatsAppStandIn) -> None:
    whatsapp.script(GraphError.rate_limited(retry_after=12), GraphError.rate_limited())
    client = whatsapp_client(whatsapp)
    with_header, without = await whatsapp_failure(client), await whatsapp_failure(client)
    assert (with_header.retryable, with_header.retry_after_s) == (True, 12.0)
    assert (without.retryable, without.retry_after_s) == (True, None)


async def test_whatsapp_dropped_slow_and_unreachable(whatsapp: WhatsAppStandIn) -> None:
    whatsapp.script(Drop(), GraphAccept(delay_s=30))
    dropped = await whatsapp_failure(whatsapp_client(whatsapp))
    slow = await whatsapp_failure(whatsapp_client(whatsapp, timeout_s=0.3))
    unreachable = await whatsapp_failure(
        WhatsAppClient(f"http://127.0.0.1:{closed_port()}", "v21.0", "1", "token", allow_private=True)
    )
    assert (dropped.code, dropped.retryable) == ("network_error", True)
    assert (slow.code, slow.retryable, slow.message) == ("timeout", True, "whatsapp did not answer within 0.3 s")
    assert (unreachable.code, unreachable.retryable) == ("connect_error", True)


async def test_whatsapp_guard_refuses_private_addresses_by_default(whatsapp: WhatsAppStandIn) -> None:
    client = WhatsAppClient(whatsapp.base_url, "v21.0", whatsapp.phone_number_id, whatsapp.access_token)
    error = await whatsapp_failure(client)
    assert (error.code, error.retryable) == ("address_refused", False)
    assert whatsapp.requests == []


async def test_whatsapp_success_without_an_id_is_not_retried(whatsapp: WhatsAppStandIn) -> None:
    whatsapp.script(Reply(200, {"messaging_product": "whatsapp", "contacts": [], "messages": []}))
    error = await whatsapp_failure(whatsapp_client(whatsapp))
    assert (error.code, error.retryable, error.status) == ("invalid_response", False, 200)


async def test_whatsapp_token_never_shows(whatsapp: WhatsAppStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = whatsapp.access_token
    client = whatsapp_client(whatsapp)
    whatsapp.script(
        GraphError(400, 190, f"Error validating access token: {token} is invalid"),
        GraphError(400, 100, "(#100) Invalid parameter", details=f"token {token} echoed"),
        Reply(503, f"upstream said Bearer {token}".encode()),
        Drop(),
    )
    errors = [await whatsapp_failure(client) for _ in range(4)]
    sent = await client.send(to=TO, kind="text", text="Hi")

    assert errors[0].message == "Error validating access token: [redacted] is invalid"
    assert errors[1].message == "(#100) Invalid parameter: token [redacted] echoed"
    assert errors[2].message == "upstream said Bearer [redacted]"
    for error in errors:
        assert_secret_absent(token, error, error.message, error.args)
        assert token not in "".join(traceback.format_exception(error))  # chained exceptions included
    assert_secret_absent(token, client, sent)
    assert token not in caplog.text


async def test_whatsapp_stand_in_status_notification(whatsapp: WhatsAppStandIn) -> None:
    sent = await whatsapp_client(whatsapp).send(to="+15551234567", kind="text", text="Hi")
    errors = [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}]
    failed = whatsapp.status_notification(sent.provider_id, "failed", timestamp=1700000000, errors=errors)
    delivered = whatsapp.status_notification(sent.provider_id, "delivered", timestamp=1700000001)

    assert failed["object"] == "whatsapp_business_account"
    [entry] = failed["entry"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    assert change["value"]["metadata"]["phone_number_id"] == whatsapp.phone_number_id
    assert change["value"]["statuses"] == [
        {
            "id": sent.provider_id,
            "status": "failed",
            "timestamp": "1700000000",
            "recipient_id": "15551234567",
            "errors": errors,
        }
    ]
    [status] = delivered["entry"][0]["changes"][0]["value"]["statuses"]
    assert (status["status"], status["timestamp"], status["pricing"]["category"]) == (
        "delivered",
        "1700000001",
        "service",
    )


# ============================================================================================ Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("99999999", 86400.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),  # one minute after ``now`` below
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # already past
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: ambiguous
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 27, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected


def test_channel_error_text() -> None:
    error = ChannelError("21211", "The 'To' number is not valid.", False, 400, retry_after_s=None)
    copy = pickle.loads(
        pickle.dumps(ChannelError("130429", "Rate limit hit", True, 429, retry_after_s=2.0, trace_id="A1"))
    )
    assert (copy.code, copy.message, copy.retryable, copy.status) == ("130429", "Rate limit hit", True, 429)
    assert (copy.retry_after_s, copy.trace_id) == (2.0, "A1")
    assert str(error) == "21211: The 'To' number is not valid."
    assert repr(error) == (
        "ChannelError(code='21211', message=\"The 'To' number is not valid.\", retryable=False, status=400, "
        "retry_after_s=None, maybe_sent=False)"
    )
    dropped = pickle.loads(pickle.dumps(ChannelError("timeout", "no answer", True, maybe_sent=True)))
    assert dropped.maybe_sent and not error.maybe_sent
