"""Sends a message through the WhatsApp Business Cloud API (Meta's Graph API).

``POST {base_url}/{api_version}/{phone_number_id}/messages`` with ``Authorization: Bearer <access token>``
and a JSON body ``{"messaging_product": "whatsapp", "recipient_type": "individual", "to", "type", <type>:
{...}}``. The Graph API answers 200 ``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages":
[{"id": "wamid.…", "message_status"?}]}``, or an error ``{"error": {"message", "type", "code",
"error_subcode"?, "error_data"?: {"messaging_product", "details"}, "fbtrace_id"}}``. Meta asks clients to
act on ``code`` rather than on the HTTP status, which for the same code differs between its own tables
(a throughput limit, 130429, comes as 400 or 429): the retry decision here looks at the code first.

    async with WhatsAppClient(base_url, "v21.0", phone_number_id, access_token) as whatsapp:
        sent = await whatsapp.send(to="15551234567", kind="text", text="Hi")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args
from urllib.parse import quote

import httpx

from threadline.channels.client import DEFAULT_TIMEOUT_S, ProviderClient, clean_text, first
from threadline.channels.errors import ChannelError
from threadline.channels.errors import retryable_status as _retryable_status
from threadline.channels.sender import SentMessage

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "MessageKind", "ReplyButton", "Template", "WhatsAppClient"]

DEFAULT_BASE_URL: Final = "https://graph.facebook.com"
DEFAULT_API_VERSION: Final = "v21.0"

MessageKind = Literal["text", "image", "audio", "video", "document", "interactive_buttons", "template"]
_KINDS: Final = frozenset(get_args(MessageKind))
_CAPTIONED: Final = frozenset({"image", "video", "document"})

# Codes after which the same request may succeed later, whatever the HTTP status: API service down (2),
# app call rate (4), account rate (80007), throughput (130429), something went wrong (131000), service
# unavailable (131016), business/consumer pair rate (131056), server temporarily unavailable (133004).
_RETRYABLE_CODES: Final = frozenset({2, 4, 80007, 130429, 131000, 131016, 131056, 133004})
# Codes about the token or the app's permissions, never retried: auth (0), API method (3), permission
# denied (10), token expired or invalid (190), blocked for policy violations (368), access denied (131005),
# account locked (131031), and the API permission range 200-299.
_AUTH_CODES: Final = frozenset({0, 3, 10, 190, 368, 131005, 131031, *range(200, 300)})


@dataclass(frozen=True)
class ReplyButton:
    """A quick-reply button: the ``id`` comes back in the user's reply, the ``title`` is shown (WhatsApp
    allows up to 3 buttons, titles of up to 20 characters)."""

    id: str
    title: str


@dataclass(frozen=True)
class Template:
    """An approved message template: its ``name``, ``language`` code and the ``components`` (header, body
    and button parameters) in the Graph API's form."""

    name: str
    language: str = "en_US"
    components: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if self.components:
            payload["components"] = [dict(c) for c in self.components]
        return payload


class WhatsAppClient(ProviderClient):
    """One WhatsApp business phone number. ``allow_private`` lets it reach loopback and private addresses
    (a stand-in in tests); production code leaves it off."""

    provider = "whatsapp"

    def __init__(
        self,
        base_url: str,
        api_version: str,
        phone_number_id: str,
        access_token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        allow_private: bool = False,
    ) -> None:
        super().__init__(base_url, secrets=[access_token], timeout_s=timeout_s, allow_private=allow_private)
        self.api_version = api_version.strip("/")
        self.phone_number_id = phone_number_id
        self._authorization = f"Bearer {access_token}"

    def __repr__(self) -> str:
        return (
            f"WhatsAppClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
            f"phone_number_id={self.phone_number_id!r})"
        )

    async def __aenter__(self) -> WhatsAppClient:
        await super().__aenter__()
        return self

    async def send(
        self,
        *,
        to: str,
        kind: MessageKind,
        text: str | None = None,
        media_url: str | None = None,
        buttons: Sequence[ReplyButton | tuple[str, str]] | None = None,
        template: Template | Mapping[str, Any] | None = None,
        filename: str | None = None,
        preview_url: bool = False,
        reply_to: str | None = None,
        callback_data: str | None = None,
    ) -> SentMessage:
        """Send one message to ``to`` (a phone number in international form or a WhatsApp id).

        ``kind`` and what it takes: ``text`` (``text``, ``preview_url``); ``image``, ``video``, ``document``
        (``media_url``, ``text`` as the caption, ``filename`` for a document); ``audio`` (``media_url``);
        ``interactive_buttons`` (``text`` as the body, 1 to 3 ``buttons``); ``template`` (``template``: a
        ``Template`` or the Graph API's template object as is). ``reply_to``: the wamid of the message
        this one answers. ``callback_data``: WhatsApp's ``biz_opaque_callback_data``, given back in this
        message's status notifications (up to 512 characters). Lengths are the API's to check (WhatsApp's
        4096 characters: split beforehand with ``channels.segments.split_whatsapp_text``). Raises
        ``ValueError`` when what ``kind`` needs is missing, ``ChannelError`` when the message is not taken.
        """
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        if reply_to is not None:
            body["context"] = {"message_id": reply_to}
        if callback_data is not None:
            body["biz_opaque_callback_data"] = callback_data
        body.update(_content(kind, text, media_url, buttons, template, filename, preview_url))
        path = f"/{quote(self.api_version, safe='.')}/{quote(self.phone_number_id, safe='')}/messages"
        response = await self._post(
            path,
            content=json.dumps(body).encode(),  # ASCII with \u escapes: any text survives the trip
            headers={"authorization": self._authorization, "content-type": "application/json"},
        )
        if 200 <= response.status_code < 300:
            return self._sent(response, to)
        raise self._error(response)

    async def mark_read(self, message_id: str) -> None:
        """Tell WhatsApp the end user's message ``message_id`` (a wamid) was read: the sender sees blue ticks
        on it and on every earlier message. Raises ``ChannelError``."""
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        path = f"/{quote(self.api_version, safe='.')}/{quote(self.phone_number_id, safe='')}/messages"
        response = await self._post(
            path,
            content=json.dumps(body).encode(),
            headers={"authorization": self._authorization, "content-type": "application/json"},
        )
        if not 200 <= response.status_code < 300:
            raise self._error(response)

    def _sent(self, response: httpx.Response, to: str) -> SentMessage:
        answer = self._json(response)
        message = first(answer.get("messages")) if isinstance(answer, dict) else {}
        wamid = message.get("id")
        if not isinstance(wamid, str) or not wamid:
            # It may have been sent: not retried, so that it is not sent twice.
            raise ChannelError(
                "invalid_response",
                f"whatsapp answered {response.status_code} without a message id: {self._excerpt(response)}",
                False,
                response.status_code,
            )
        contact = first(answer.get("contacts")) if isinstance(answer, dict) else {}
        status = message.get("message_status")
        wa_id = contact.get("wa_id")
        return SentMessage(
            provider_id=wamid,
            account_id=self.phone_number_id,
            segments=None,
            price=None,
            price_currency=None,
            status=status if isinstance(status, str) and status else "accepted",
            recipient_id=wa_id if isinstance(wa_id, str) and wa_id else None,
        )

    def _error(self, response: httpx.Response) -> ChannelError:
        status = response.status_code
        answer = self._json(response)
        error = answer.get("error") if isinstance(answer, dict) else None
        number: int | None = None
        message = self._excerpt(response)
        trace_id: str | None = None
        if isinstance(error, dict):
            raw_code = error.get("code")
            if isinstance(raw_code, int) and not isinstance(raw_code, bool):
                number = raw_code
            elif isinstance(raw_code, str) and raw_code.strip().isdigit():
                number = int(raw_code)
            text = error.get("message")
            if isinstance(text, str) and text.strip():
                message = text.strip()
            data = error.get("error_data")
            details = data.get("details") if isinstance(data, dict) else None
            if isinstance(details, str) and details.strip() and details.strip() not in message:
                message = f"{message}: {details.strip()}"
            if isinstance(error.get("fbtrace_id"), str):
                trace_id = error["fbtrace_id"]
        if status in (401, 403) or number in _AUTH_CODES:
            retryable = False
        elif number in _RETRYABLE_CODES:
            retryable = True
        else:
            retryable = _retryable_status(status)
        return ChannelError(
            str(number) if number is not None else f"http_{status}",
            self.scrub(message),
            retryable,
            status,
            retry_after_s=self._retry_after(response),
            trace_id=trace_id,
        )


def _content(
    kind: str,
    text: str | None,
    media_url: str | None,
    buttons: Sequence[ReplyButton | tuple[str, str]] | None,
    template: Template | Mapping[str, Any] | None,
    filename: str | None,
    preview_url: bool,
) -> dict[str, Any]:
    """The ``type`` and the object of that type for a message of ``kind``."""
    if kind not in _KINDS:
        raise ValueError(f"unknown message kind {kind!r}; one of {', '.join(sorted(_KINDS))}")
    if kind == "text":
        if not text:
            raise ValueError("a text message needs text")
        return {"type": "text", "text": {"preview_url": preview_url, "body": clean_text(text)}}
    if kind == "interactive_buttons":
        if not text:
            raise ValueError("a message with buttons needs text (its body)")
        if not buttons:
            raise ValueError("a message with buttons needs buttons")
        replies = [b if isinstance(b, ReplyButton) else ReplyButton(*b) for b in buttons]
        interactive = {
            "type": "button",
            "body": {"text": clean_text(text)},
            "action": {
                "buttons": [{"type": "reply", "reply": {"id": b.id, "title": clean_text(b.title)}} for b in replies]
            },
        }
        return {"type": "interactive", "interactive": interactive}
    if kind == "template":
        if template is None:
            raise ValueError("a template message needs a template")
        payload = template.payload() if isinstance(template, Template) else dict(template)
        return {"type": "template", "template": payload}
    # image, audio, video, document
    if not media_url:
        raise ValueError(f"{kind} messages need a media_url")
    media: dict[str, Any] = {"link": media_url}
    if text:
        if kind not in _CAPTIONED:
            raise ValueError(f"{kind} messages take no text (caption)")
        media["caption"] = clean_text(text)
    if filename:
        if kind != "document":
            raise ValueError("only a document takes a filename")
        media["filename"] = filename
    return {"type": kind, kind: media}
