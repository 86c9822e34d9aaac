"""Twilio's webhooks: incoming SMS (``POST /channels/twilio/{integration_id}/sms``) and delivery status
callbacks (``POST /channels/twilio/{integration_id}/status``).

Twilio POSTs form-encoded parameters and signs each request with ``X-Twilio-Signature``: the Base64 of
the HMAC-SHA1, keyed with the account's auth token, of the full URL it called followed by every POST
parameter's name and value, sorted by name (as Twilio documents it and its ``RequestValidator`` computes
it). The URL is the one Twilio was configured with, so behind a proxy it is rebuilt from
``public_base_url`` (see ``channels.inbound.public_url``); like ``RequestValidator``, it is also tried
with the default port added or removed. A request that is unsigned, or whose URL or parameters differ from
what was signed, is refused with 403 before anything is read from it.

The signature joins names and values without separators, so it does not pin where one value ends:
``MessageSid=SM...`` with ``NumMedia=0`` is signed exactly like ``MessageSid=SM...NumMedia0`` without
``NumMedia``. The ids threadline keys on (``MessageSid``, which stores a message once, and the others of
``ID_FORMATS``) are therefore taken only in Twilio's own fixed-length formats, each at most once: any other
value is a 400 that stores nothing, so a captured request cannot be replayed as a new message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Final, NoReturn
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import structlog
from fastapi import APIRouter, Path, Request, Response

from threadline.channels import inbound
from threadline.channels.twilio.sender import MESSAGE_TAG, TwilioSender
from threadline.config import Settings
from threadline.errors import InvalidRequest
from threadline.integrations.service import ChannelCredentials
from threadline.kit.clock import utcnow
from threadline.messages import lifecycle
from threadline.models.enums import ChannelType, MessageType, Source
from threadline.web.deps import SessionDep

log = structlog.get_logger(__name__)

router = APIRouter()

SIGNATURE_HEADER: Final = "x-twilio-signature"
EMPTY_TWIML: Final = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA: Final = 10  # Twilio attaches at most 10 media to a message
MAX_FIELDS: Final = 200
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
_MESSAGE_SID_TEXT = "a message SID: SM or MM followed by 32 lowercase hexadecimal digits"

# The ids of Twilio's webhooks, each with the only format Twilio gives it (checked with fullmatch).
ID_FORMATS: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    "AccountSid": (re.compile(r"AC[0-9a-f]{32}"), "an account SID: AC followed by 32 lowercase hexadecimal digits"),
    "MessageSid": (_MESSAGE_SID, _MESSAGE_SID_TEXT),
    "SmsSid": (_MESSAGE_SID, _MESSAGE_SID_TEXT),
    "SmsMessageSid": (_MESSAGE_SID, _MESSAGE_SID_TEXT),
    "MessagingServiceSid": (
        re.compile(r"MG[0-9a-f]{32}"),
        "a messaging service SID: MG followed by 32 lowercase hexadecimal digits",
    ),
}
# Older names Twilio still sends for MessageSid, with the same value.
_MESSAGE_SID_ALIASES: Final = ("SmsSid", "SmsMessageSid")

IntegrationId = Annotated[str, Path(max_length=64, description="The integration's id.")]


# ------------------------------------------------------------------------------------------ the signature


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` of a request to ``url`` with these POST parameters: each name, in sorted
    order, followed by each of its (distinct, sorted) values, appended to the URL, HMAC-SHA1 with the
    auth token, in Base64."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """``url`` as given, and with its default port removed or added (Twilio signs either way)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port if port is not None else default}"))
    return list(dict.fromkeys([url, without, with_port]))


def valid_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]], given: str) -> bool:
    return any(inbound.same_secret(given, signature(auth_token, u, params)) for u in _url_variants(url))


async def _signed_params(request: Request, settings: Settings, credentials: ChannelCredentials) -> dict[str, str]:
    """The request's POST parameters (the last value of each), once its signature is checked: 403 when it
    is missing or does not match, 400 when the body is not a form."""
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise inbound.signature_refused(f"{SIGNATURE_HEADER.title()} is missing")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be form-encoded (application/x-www-form-urlencoded)")
    body = await request.body()
    try:
        params = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body is not a form-encoded UTF-8 text of at most 200 fields") from None
    url = inbound.public_url(request, settings)
    if not valid_signature(inbound.secret(credentials, "auth_token"), url, params, given):
        log.warning("channels.twilio.signature_refused", integration_id=str(credentials.public_id))
        raise inbound.signature_refused()
    _check_ids(params, credentials)
    form = dict(params)
    account_sid = credentials.settings.get("account_sid")
    if form.get("AccountSid") != account_sid:
        log.warning("channels.twilio.other_account", integration_id=str(credentials.public_id))
        raise inbound.signature_refused("AccountSid is not this integration's account")
    return form


def _check_ids(params: Sequence[tuple[str, str]], credentials: ChannelCredentials) -> None:
    """400 unless every id of ``ID_FORMATS`` present is in its format and given once, and the older names of
    ``MessageSid`` repeat it. (Whether ``MessageSid`` is there at all is each endpoint's check.)"""
    seen: dict[str, str] = {}
    for name, value in params:
        rule = ID_FORMATS.get(name)
        if rule is None:
            continue
        pattern, what = rule
        if name in seen:
            _malformed(credentials, name, "given more than once")
        if value and not pattern.fullmatch(value):  # an empty one is absent: the endpoints require theirs
            _malformed(credentials, name, f"must be {what}")
        seen[name] = value
    sid = seen.get("MessageSid")
    for alias in _MESSAGE_SID_ALIASES:
        if sid is not None and seen.get(alias, sid) != sid:
            _malformed(credentials, alias, "must be the same as MessageSid")


def _malformed(credentials: ChannelCredentials, name: str, problem: str) -> NoReturn:
    # Twilio never sends this: a correctly signed request has been taken apart and put together again.
    log.warning("channels.twilio.malformed_id", integration_id=str(credentials.public_id), param=name)
    raise InvalidRequest(f"{name}: {problem}", param=name)


def _required(form: dict[str, str], name: str, *, max_chars: int = 2048) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InvalidRequest(f"{name}: required", param=name)
    if len(value) > max_chars:
        raise InvalidRequest(f"{name}: longer than {max_chars} characters", param=name)
    return value


def _optional(form: dict[str, str], name: str, *, max_chars: int) -> str | None:
    """A parameter's value, None when absent or empty, clipped to what its column holds."""
    value = form.get(name, "").strip()
    return value[:max_chars] if value else None


def _count(form: dict[str, str], name: str, *, upper: int) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > upper:
        raise InvalidRequest(f"{name}: must be a whole number from 0 to {upper}", param=name)
    return int(raw)


async def _credentials(request: Request, session: Any, integration_id: str) -> tuple[Settings, ChannelCredentials]:
    settings: Settings = request.app.state.settings
    found = await inbound.credentials_for(
        session, integration_id=integration_id, type=ChannelType.SMS, settings=settings
    )
    return settings, found


# ------------------------------------------------------------------------------------------ incoming SMS


def parse_sms(form: dict[str, str]) -> inbound.InboundMessage:
    """Twilio's incoming-message parameters as the message we store."""
    sid = _required(form, "MessageSid", max_chars=128)
    sender = _required(form, "From")
    if not _E164.match(sender):
        raise InvalidRequest("From: must be an E.164 phone number such as +14155550123", param="From")
    num_media = _count(form, "NumMedia", upper=MAX_MEDIA) or 0
    attachments: list[dict[str, Any]] = []
    for i in range(num_media):
        url = _required(form, f"MediaUrl{i}")
        content_type = form.get(f"MediaContentType{i}", "").strip() or None
        attachments.append(
            {"type": inbound.type_for_content_type(content_type).value, "url": url, "content_type": content_type}
        )
    twilio: dict[str, Any] = {"num_media": num_media}
    for name, key in (
        ("To", "to"),
        ("MessagingServiceSid", "messaging_service_sid"),
        ("ApiVersion", "api_version"),
    ):
        if form.get(name):
            twilio[key] = form[name]
    return inbound.InboundMessage(
        address=sender,
        external_id=sid,
        source=Source.SMS,
        provider_account_id=form["AccountSid"],
        segments=_count(form, "NumSegments", upper=10_000) or None,
        content=form.get("Body", ""),
        type=MessageType(attachments[0]["type"]) if attachments else MessageType.TEXT,
        media_url=attachments[0]["url"] if attachments else None,
        attachments=attachments,
        metadata={"twilio": twilio},
    )


@router.post("/{integration_id}/sms", summary="Twilio: an incoming SMS")
async def incoming_sms(integration_id: IntegrationId, request: Request, session: SessionDep) -> Response:
    """Stores the message once (Twilio retries) and answers at once with empty TwiML: the agent's reply is
    sent through the API later, not in this answer. The run starts when the request's transaction commits,
    just before the answer goes out."""
    settings, credentials = await _credentials(request, session, integration_id)
    form = await _signed_params(request, settings, credentials)
    message = parse_sms(form)
    (received,) = await inbound.receive(session, channel=credentials, messages=[message])
    if received.duplicate:
        log.info("channels.twilio.duplicate", integration_id=str(credentials.public_id))
    return Response(content=EMPTY_TWIML, media_type="text/xml")


# ------------------------------------------------------------------------------------------ status callbacks


def _provider_fields(form: dict[str, str]) -> lifecycle.ProviderFields:
    error_code = _optional(form, "ErrorCode", max_chars=64)
    return lifecycle.ProviderFields(
        provider_account_id=_optional(form, "AccountSid", max_chars=128),
        segments=_count(form, "NumSegments", upper=10_000),
        price=_optional(form, "Price", max_chars=32),
        price_currency=_optional(form, "PriceUnit", max_chars=8),
        error_code=error_code if error_code != "0" else None,  # some carriers report 0 for "no error"
        error_message=_optional(form, "ErrorMessage", max_chars=1000),
    )


@router.post("/{integration_id}/status", summary="Twilio: a message's delivery status")
async def status_callback(integration_id: IntegrationId, request: Request, session: SessionDep) -> Response:
    """Moves the message Twilio names (by ``MessageSid``) along its lifecycle; never backwards. An unknown
    message or status is answered 200 all the same: Twilio would only report it again."""
    settings, credentials = await _credentials(request, session, integration_id)
    form = await _signed_params(request, settings, credentials)
    sid = _required(form, "MessageSid", max_chars=128)
    word = _required(form, "MessageStatus").lower()
    to = TwilioSender.status(word)
    fields = _provider_fields(form)
    if to is None:
        log.info("channels.twilio.status_ignored", integration_id=str(credentials.public_id), status=word[:32])
        return Response(status_code=200)
    moved = await lifecycle.advance_by_external_id(
        session,
        integration_id=credentials.id,
        external_id=sid,
        to=to,
        at=utcnow(),
        provider=fields,
        tag=request.query_params.get(MESSAGE_TAG),  # signed: part of the URL Twilio signed
    )
    if moved is None:
        log.info("channels.twilio.status_unknown_message", integration_id=str(credentials.public_id))
    return Response(status_code=200)
