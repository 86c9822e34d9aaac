"""The WhatsApp Cloud API's webhook: ``GET /channels/whatsapp/{integration_id}/webhook`` (Meta's verification
handshake) and ``POST`` on the same path (notifications: the end users' messages and the statuses of ours).

Meta signs each notification with ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body
keyed with the app secret; an unsigned notification, or one whose body differs by a byte from what was
signed, is refused with 403 before anything is read from it. A notification carries
``entry[].changes[].value`` with ``metadata.phone_number_id`` (changes for another number than the
integration's are skipped), ``contacts`` (the senders' profile names), ``messages`` and ``statuses``.

Message types map onto ours (see ``parse_message``): ``text``; ``image``, ``audio``, ``video``,
``document`` and ``sticker`` (an image) keep the media as a reference, its media id in ``attachments`` and
``metadata`` (nothing is downloaded); ``button`` (a template's quick reply) and ``interactive``
``button_reply``/``list_reply`` are ``button`` messages whose content is the title chosen; ``location`` and
``contacts`` are text. Reactions and what the API calls ``unsupported``/``system`` are stored for the
record but start no run. A malformed notification is a 400 and stores nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Path, Request, Response

from threadline.channels import inbound
from threadline.channels.whatsapp.sender import WhatsAppSender
from threadline.config import Settings
from threadline.errors import InvalidRequest
from threadline.integrations.service import ChannelCredentials
from threadline.kit.clock import from_unix_seconds, utcnow
from threadline.messages import lifecycle
from threadline.models.enums import ChannelType, MessageType, Source
from threadline.web.deps import SessionDep

log = structlog.get_logger(__name__)

router = APIRouter()

SIGNATURE_HEADER: Final = "x-hub-signature-256"
MAX_CHALLENGE_CHARS: Final = 256
_WA_ID = re.compile(r"^[1-9][0-9]{6,14}$")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")

MEDIA_TYPES: Final[dict[str, MessageType]] = {
    "image": MessageType.IMAGE,
    "sticker": MessageType.IMAGE,
    "audio": MessageType.AUDIO,
    "video": MessageType.VIDEO,
    "document": MessageType.DOCUMENT,
}
_MEDIA_FIELDS = ("mime_type", "sha256", "filename", "voice", "animated")

IntegrationId = Annotated[str, Path(max_length=64, description="The integration's id.")]


async def _credentials(request: Request, session: Any, integration_id: str) -> ChannelCredentials:
    settings: Settings = request.app.state.settings
    return await inbound.credentials_for(
        session, integration_id=integration_id, type=ChannelType.WHATSAPP, settings=settings
    )


# ------------------------------------------------------------------------------------------ verification


@router.get("/{integration_id}/webhook", summary="WhatsApp: the webhook verification handshake")
async def verify(integration_id: IntegrationId, request: Request, session: SessionDep) -> Response:
    """Meta's check when the callback URL is saved: ``hub.mode=subscribe`` and ``hub.verify_token`` equal to
    the integration's verify token are answered 200 with ``hub.challenge``, as plain text; anything else 403."""
    credentials = await _credentials(request, session, integration_id)
    query = request.query_params
    token = query.get("hub.verify_token") or ""
    if query.get("hub.mode") != "subscribe" or not inbound.same_secret(
        token, inbound.secret(credentials, "verify_token")
    ):
        log.warning("channels.whatsapp.verification_refused", integration_id=str(credentials.public_id))
        raise inbound.signature_refused("the verification request does not match this integration")
    challenge = query.get("hub.challenge") or ""
    if not challenge or len(challenge) > MAX_CHALLENGE_CHARS:
        raise InvalidRequest(
            f"hub.challenge: required, at most {MAX_CHALLENGE_CHARS} characters", param="hub.challenge"
        )
    return Response(content=challenge, media_type="text/plain", headers={"x-content-type-options": "nosniff"})


# ------------------------------------------------------------------------------------------ notifications


def valid_signature(app_secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` (``sha256=<hex>``) is the HMAC-SHA256 of ``body`` keyed with ``app_secret``."""
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not _HEX.match(given):
        return False
    expected = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower(), expected)


@router.post("/{integration_id}/webhook", summary="WhatsApp: a notification (messages, statuses)")
async def notification(integration_id: IntegrationId, request: Request, session: SessionDep) -> Response:
    """Stores each end user's message once (Meta redelivers until it gets a 200) and moves our messages along
    their lifecycle by the statuses reported; answers 200 once all of it is committed."""
    credentials = await _credentials(request, session, integration_id)
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        raise inbound.signature_refused("X-Hub-Signature-256 is missing")
    body = await request.body()
    if not valid_signature(inbound.secret(credentials, "app_secret"), body, header):
        log.warning("channels.whatsapp.signature_refused", integration_id=str(credentials.public_id))
        raise inbound.signature_refused()
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not JSON") from None
    phone_number_id = str(credentials.settings.get("phone_number_id", ""))
    messages: list[inbound.InboundMessage] = []
    statuses: list[tuple[str, dict[str, Any]]] = []
    for where, value in _values(document):
        metadata = _object(value.get("metadata"), f"{where}.metadata")
        if _text(metadata, "phone_number_id", f"{where}.metadata") != phone_number_id:
            log.warning("channels.whatsapp.other_phone_number", integration_id=str(credentials.public_id))
            continue
        names = _profile_names(value, where)
        for i, raw in enumerate(_list(value.get("messages"), f"{where}.messages")):
            at = f"{where}.messages[{i}]"
            messages.append(parse_message(_object(raw, at), at, phone_number_id=phone_number_id, names=names))
        for i, raw in enumerate(_list(value.get("statuses"), f"{where}.statuses")):
            at = f"{where}.statuses[{i}]"
            statuses.append((at, _object(raw, at)))
    # All of it is read before anything is written: a malformed part is a 400 that stores nothing.
    for received in await inbound.receive(session, channel=credentials, messages=messages):
        if received.duplicate:
            log.info("channels.whatsapp.duplicate", integration_id=str(credentials.public_id))
    for at, raw in statuses:
        await _apply_status(session, credentials, raw, at)
    return Response(status_code=200)


def _values(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The ``value`` of every ``messages`` change of a WhatsApp Business Account notification, with where it
    is in the body (for errors). Other objects and other fields (account or template updates) are skipped."""
    root = _object(document, "body")
    if root.get("object") != "whatsapp_business_account":
        return []
    found = []
    for i, entry in enumerate(_list(root.get("entry"), "entry")):
        entry_where = f"entry[{i}]"
        for j, change in enumerate(_list(_object(entry, entry_where).get("changes"), f"{entry_where}.changes")):
            where = f"{entry_where}.changes[{j}]"
            change = _object(change, where)
            if change.get("field") != "messages":
                continue
            found.append((f"{where}.value", _object(change.get("value"), f"{where}.value")))
    return found


def _profile_names(value: dict[str, Any], where: str) -> dict[str, str]:
    names = {}
    for i, contact in enumerate(_list(value.get("contacts"), f"{where}.contacts")):
        contact = _object(contact, f"{where}.contacts[{i}]")
        profile = contact.get("profile")
        wa_id, name = contact.get("wa_id"), profile.get("name") if isinstance(profile, dict) else None
        if isinstance(wa_id, str) and isinstance(name, str):
            names[wa_id] = name
    return names


# ------------------------------------------------------------------------------------------ messages


def parse_message(
    raw: dict[str, Any], where: str, *, phone_number_id: str, names: dict[str, str]
) -> inbound.InboundMessage:
    """One element of ``value.messages`` as the message we store."""
    wamid = _text(raw, "id", where, max_chars=128)
    sender = _text(raw, "from", where, max_chars=32)
    if not _WA_ID.match(sender):
        raise InvalidRequest(f"{where}.from: must be a WhatsApp id (the phone number's digits)", param=f"{where}.from")
    kind = _text(raw, "type", where, max_chars=64)
    meta: dict[str, Any] = {"type": kind}
    if isinstance(raw.get("timestamp"), str):
        meta["timestamp"] = raw["timestamp"]
    reply_to = None
    context = raw.get("context")
    if isinstance(context, dict):
        meta["context"] = {k: context[k] for k in ("from", "id", "forwarded", "frequently_forwarded") if k in context}
        if isinstance(context.get("id"), str):
            reply_to = context["id"]
    message = inbound.InboundMessage(
        address="+" + sender,
        external_id=wamid,
        source=Source.WHATSAPP,
        provider_account_id=phone_number_id,
        metadata={"whatsapp": meta},
        display_name=names.get(sender, ""),
        reply_to=reply_to,
    )
    content_where = f"{where}.{kind}"
    if kind == "text":
        message.content = _text(_object(raw.get("text"), content_where), "body", content_where, max_chars=100_000)
    elif kind in MEDIA_TYPES:
        media = _object(raw.get(kind), content_where)
        media_id = _text(media, "id", content_where, max_chars=128)
        attachment: dict[str, Any] = {"type": MEDIA_TYPES[kind].value, "media_id": media_id}
        attachment.update({k: media[k] for k in _MEDIA_FIELDS if k in media})
        message.type = MEDIA_TYPES[kind]
        message.attachments = [attachment]
        message.content = media["caption"] if isinstance(media.get("caption"), str) else ""
        meta["media_id"] = media_id
    elif kind == "button":  # a quick reply button of a template message
        button = _object(raw.get("button"), content_where)
        message.type = MessageType.BUTTON
        message.content = _first_text(button, "text", "payload")
        meta["button"] = {k: button[k] for k in ("payload", "text") if k in button}
    elif kind == "interactive":
        _interactive(message, _object(raw.get("interactive"), content_where), content_where)
    elif kind == "location":
        location = _object(raw.get("location"), content_where)
        coordinates = f"{location.get('latitude')}, {location.get('longitude')}"
        message.content = "\n".join(p for p in (location.get("name"), location.get("address"), coordinates) if p)
        meta["location"] = location
    elif kind == "contacts":
        shared = _list(raw.get("contacts"), content_where)
        message.content = ", ".join(_contact_name(c) for c in shared if _contact_name(c))
        meta["contacts"] = shared
    elif kind == "reaction":  # an emoji on one of the thread's messages: recorded, not a turn to answer
        reaction = _object(raw.get("reaction"), content_where)
        message.content = reaction["emoji"] if isinstance(reaction.get("emoji"), str) else ""
        meta["reaction"] = reaction
        if isinstance(reaction.get("message_id"), str):
            message.reply_to = reaction["message_id"]
        message.start_run = False
    else:  # unsupported, system, order, ...: kept as the API sent it, for an operator to see
        if kind in raw:
            meta[kind] = raw[kind]
        if "errors" in raw:
            meta["errors"] = raw["errors"]
        message.start_run = False
    return message


def _interactive(message: inbound.InboundMessage, interactive: dict[str, Any], where: str) -> None:
    """A reply to one of our interactive messages: the button or list row chosen, as a ``button`` message."""
    kind = interactive.get("type")
    meta = message.metadata["whatsapp"]
    if kind in ("button_reply", "list_reply"):
        reply = _object(interactive.get(kind), f"{where}.{kind}")
        message.type = MessageType.BUTTON
        message.content = _first_text(reply, "title", "id")
        chosen: dict[str, Any] = {"type": kind}
        chosen.update({k: reply[k] for k in ("id", "title", "description") if k in reply})
        meta["reply"] = chosen
    else:  # a flow's answer (nfm_reply) or a kind this version does not know
        meta["interactive"] = interactive
        message.start_run = False


def _contact_name(contact: Any) -> str:
    name = contact.get("name") if isinstance(contact, dict) else None
    formatted = name.get("formatted_name") if isinstance(name, dict) else None
    return formatted if isinstance(formatted, str) else ""


def _first_text(obj: dict[str, Any], *keys: str) -> str:
    for key in keys:
        if isinstance(obj.get(key), str) and obj[key]:
            return str(obj[key])
    return ""


# ------------------------------------------------------------------------------------------ statuses


async def _apply_status(session: Any, credentials: ChannelCredentials, raw: dict[str, Any], where: str) -> None:
    wamid = _text(raw, "id", where, max_chars=128)
    word = _text(raw, "status", where, max_chars=64)
    to = WhatsAppSender.status(word)
    if to is None:  # "deleted", "warning", ...: no step of a delivery
        log.info("channels.whatsapp.status_ignored", integration_id=str(credentials.public_id), status=word)
        return
    error_code = error_message = None
    errors = _list(raw.get("errors"), f"{where}.errors")
    if errors:
        error = _object(errors[0], f"{where}.errors[0]")
        if isinstance(error.get("code"), int | str):
            error_code = str(error["code"])[:64]
        error_message = _error_message(error)
    fields = lifecycle.ProviderFields(
        provider_account_id=str(credentials.settings.get("phone_number_id") or "") or None,
        error_code=error_code,
        error_message=error_message,
    )
    moved = await lifecycle.advance_by_external_id(
        session,
        integration_id=credentials.id,
        external_id=wamid,
        to=to,
        at=_timestamp(raw, where),
        provider=fields,
        tag=raw.get("biz_opaque_callback_data") if isinstance(raw.get("biz_opaque_callback_data"), str) else None,
    )
    if moved is None:
        log.info("channels.whatsapp.status_unknown_message", integration_id=str(credentials.public_id))


def _error_message(error: dict[str, Any]) -> str | None:
    """Meta's ``message`` (else ``title``), with ``error_data.details`` when it says more."""
    message = _first_text(error, "message", "title")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details.strip() and details.strip() not in message:
        message = f"{message}: {details.strip()}" if message else details.strip()
    return message[:1000] or None


def _timestamp(raw: dict[str, Any], where: str) -> datetime:
    """When the status was reached (Unix seconds, as a string); now when the notification does not say."""
    value = raw.get("timestamp")
    if value is None:
        return utcnow()
    text = str(value)
    at = from_unix_seconds(int(text)) if text.isascii() and text.isdigit() and len(text) <= 12 else None
    if at is None:  # 12 digits reach past year 9999, which no datetime holds
        raise InvalidRequest(f"{where}.timestamp: must be Unix seconds before year 10000", param=f"{where}.timestamp")
    return at


# ------------------------------------------------------------------------------------------ shape checks


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: must be a JSON object", param=where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: must be a JSON array", param=where)
    return value


def _text(obj: dict[str, Any], key: str, where: str, *, max_chars: int = 256) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where}.{key}: required (a string)", param=f"{where}.{key}")
    if len(value) > max_chars:
        raise InvalidRequest(f"{where}.{key}: longer than {max_chars} characters", param=f"{where}.{key}")
    return value
