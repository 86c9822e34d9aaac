"""The WhatsApp Business Cloud API (Meta's Graph API) on 127.0.0.1, scripted by the test that runs it.

The subset threadline calls, as Meta documents it: ``POST /{version}/{phone_number_id}/messages`` with
``Authorization: Bearer <access token>`` and a JSON body ``{"messaging_product": "whatsapp",
"recipient_type": "individual", "to", "type": text|image|audio|video|document|interactive|template, ...}``.
It answers 200 ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}], "messages": [{"id":
"wamid.…"}]}`` (template messages add ``"message_status": "accepted"``), and fails as the Graph API does,
``{"error": {"message", "type", "code", "error_subcode"?, "error_data"?: {"messaging_product", "details"},
"fbtrace_id"}}``: 401/190 for a wrong token, 400/100 (GraphMethodException, subcode 33) for another phone
number id, 400/100 or 131009 for a body the API refuses (text over 4096 characters, counted here in UTF-16
code units, the stricter reading; button titles over 20; more than 3 buttons).

    with WhatsAppStandIn() as whatsapp:
        whatsapp.script(GraphError.reengagement(), GraphError.rate_limited(retry_after=1), Drop())
        client = WhatsAppClient(whatsapp.base_url, "v21.0", whatsapp.phone_number_id, whatsapp.access_token,
                                allow_private=True)
        ...
        notification = whatsapp.status_notification(wamid, "delivered")  # a webhook body, to sign and POST

Scripting works as in ``twilio_server``: ``Accept`` (overrides), ``GraphError``, ``Drop``, a raw ``Reply``,
or a function of the request returning one; with none, the default, and with no default the API's own
behaviour.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.twilio_server import Drop, HTTPStandIn, ReceivedRequest, Reply

__all__ = ["Accept", "Drop", "GraphError", "ReceivedRequest", "Reply", "WhatsAppStandIn"]

_PATH = re.compile(r"^/(?P<version>v[0-9]+\.[0-9]+)/(?P<phone>[^/]+)/messages$")
_TYPES = ("text", "image", "audio", "video", "document", "interactive", "template")
_MEDIA = ("image", "audio", "video", "document")


@dataclass(frozen=True)
class Accept:
    """Send the message (after the usual checks), with these fields of the answer overridden."""

    wa_id: str | None = None  # default: the digits of ``to``
    message_status: str | None = None  # default: "accepted" for a template, absent otherwise
    id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class GraphError:
    """A failure with the Graph API's error body; ``message`` is the whole ``error.message``."""

    status: int
    code: int
    message: str
    details: str | None = None
    type: str = "OAuthException"
    subcode: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def invalid_token(cls) -> GraphError:
        return cls(401, 190, "Invalid OAuth access token - Cannot parse access token")

    @classmethod
    def invalid_parameter(cls, details: str) -> GraphError:
        return cls(400, 100, "(#100) Invalid parameter", details)

    @classmethod
    def undeliverable(cls) -> GraphError:
        return cls(400, 131026, "(#131026) Message Undeliverable", "Message Undeliverable.")

    @classmethod
    def reengagement(cls) -> GraphError:
        details = (
            "Message failed to send because more than 24 hours have passed since the customer last replied "
            "to this number."
        )
        return cls(400, 131047, "(#131047) Re-engagement message", details)

    @classmethod
    def rate_limited(cls, *, status: int = 429, retry_after: str | float | None = None) -> GraphError:
        """Throughput reached (130429): Meta's tables give it as 429 and as 400."""
        details = (
            "Message failed to send because there were too many messages sent from this phone number in a "
            "short period of time"
        )
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return cls(status, 130429, "(#130429) Rate limit hit", details, subcode=2494055, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> GraphError:
        return cls(status, 131000, "(#131000) Something went wrong", "Something went wrong")

    @classmethod
    def unavailable(cls) -> GraphError:
        return cls(503, 131016, "(#131016) Service unavailable", "A service is temporarily unavailable.")

    def reply(self) -> Reply:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = "A" + base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()
        return Reply(self.status, {"error": error}, self.headers, self.delay_s)


def _wamid() -> str:
    return "wamid." + base64.b64encode(b"\x15\x02\x00\x11\x18\x12" + secrets.token_bytes(24)).decode()


def _units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class WhatsAppStandIn(HTTPStandIn):
    """The server. ``base_url`` is what ``https://graph.facebook.com`` is to a real client; any API version
    ``vN.M`` is served. ``access_token`` and ``phone_number_id`` are made up unless given; with
    ``templates``, a template of another name fails as an unknown one does (132001)."""

    name = "WhatsApp stand-in"

    def __init__(
        self,
        *,
        access_token: str | None = None,
        phone_number_id: str | None = None,
        display_phone_number: str = "15550783881",
        business_account_id: str = "102290129340398",
        templates: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.access_token = access_token or "EAAG" + secrets.token_urlsafe(48).replace("-", "").replace("_", "")
        self.phone_number_id = phone_number_id or str(100_000_000_000_000 + secrets.randbelow(10**14))
        self.display_phone_number = display_phone_number
        self.business_account_id = business_account_id
        self.templates = templates
        self._sent: dict[str, dict[str, Any]] = {}
        self.read_receipts: list[str] = []  # the wamids marked read, in order

    def __enter__(self) -> WhatsAppStandIn:
        self.start()
        return self

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request bodies of the messages sent, oldest first, each with its ``"id"`` (the wamid) added."""
        with self._lock:
            return list(self._sent.values())

    def status_notification(
        self,
        wamid: str,
        status: str,
        *,
        timestamp: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The webhook body WhatsApp POSTs when message ``wamid`` moves to ``status`` (sent, delivered, read,
        failed; ``errors`` for a failure, e.g. ``[{"code": 131047, "title": "Re-engagement message", ...}]``)."""
        with self._lock:
            sent = self._sent[wamid]
        entry: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(timestamp if timestamp is not None else int(time.time())),
            "recipient_id": re.sub(r"\D", "", sent["to"]),
        }
        if status in ("sent", "delivered"):
            entry["conversation"] = {"id": secrets.token_hex(16), "origin": {"type": "service"}}
            entry["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
        if errors is not None:
            entry["errors"] = errors
        if "biz_opaque_callback_data" in sent:  # Meta gives it back in the message's every status
            entry["biz_opaque_callback_data"] = sent["biz_opaque_callback_data"]
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id},
            "statuses": [entry],
        }
        change = {"value": value, "field": "messages"}
        return {"object": "whatsapp_business_account", "entry": [{"id": self.business_account_id, "changes": [change]}]}

    def _handle(self, request: ReceivedRequest) -> Reply | Drop:
        match = _PATH.match(request.path)
        if match is None:
            return GraphError(400, 2500, f"Unknown path components: {request.path}").reply()
        if request.bearer_token != self.access_token:
            return GraphError.invalid_token().reply()
        if match["phone"] != self.phone_number_id or request.method != "POST":
            message = (
                f"Unsupported {request.method.lower()} request. Object with ID '{match['phone']}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation. Please read "
                "the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            )
            return GraphError(400, 100, message, type="GraphMethodException", subcode=33).reply()
        answer = self._take(request)
        if isinstance(answer, GraphError):
            return answer.reply()
        if isinstance(answer, Drop | Reply):
            return answer
        return self._send(request, answer if isinstance(answer, Accept) else Accept())

    def _send(self, request: ReceivedRequest, accept: Accept) -> Reply:
        body = request.json
        if not isinstance(body, dict):
            return GraphError.invalid_parameter("The request body is not valid JSON.").reply()
        if body.get("messaging_product") != "whatsapp":
            return GraphError(400, 100, "(#100) The parameter messaging_product is required.").reply()
        if "status" in body:  # a read receipt for an incoming message
            message_id = body.get("message_id")
            if body["status"] != "read" or not isinstance(message_id, str) or not message_id:
                return GraphError.invalid_parameter("Param status must be read, with a message_id").reply()
            with self._lock:
                self.read_receipts.append(message_id)
            return Reply(200, {"success": True}, accept.headers, accept.delay_s)
        to = body.get("to")
        if not isinstance(to, str) or not to:
            return GraphError(400, 100, "(#100) The parameter to is required.").reply()
        kind = body.get("type", "text")
        if kind not in _TYPES:
            return GraphError.invalid_parameter(f"Param type must be one of {{{', '.join(_TYPES)}}}").reply()
        problem = self._check(kind, body.get(kind))
        if problem is not None:
            return problem.reply()
        wamid = accept.id or _wamid()
        message: dict[str, Any] = {"id": wamid}
        status = accept.message_status or ("accepted" if kind == "template" else None)
        if status is not None:
            message["message_status"] = status
        wa_id = accept.wa_id or re.sub(r"\D", "", to)
        with self._lock:
            self._sent[wamid] = {**body, "id": wamid}
        answer = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa_id}], "messages": [message]}
        return Reply(200, answer, accept.headers, accept.delay_s)

    def _check(self, kind: str, content: Any) -> GraphError | None:
        """What the API says of the ``kind`` object of a message, or None when it takes it."""
        if not isinstance(content, dict):
            return GraphError(400, 100, f"(#100) The parameter {kind} is required.")
        if kind == "text":
            text = content.get("body")
            if not isinstance(text, str) or not text:
                return GraphError(400, 100, "(#100) The parameter text['body'] is required.")
            if _units(text) > 4096:
                return GraphError.invalid_parameter("Param text['body'] must be at most 4096 characters long.")
        elif kind in _MEDIA:
            if not isinstance(content.get("link"), str) and not isinstance(content.get("id"), str):
                return GraphError.invalid_parameter(f"Param {kind} must contain either 'id' or 'link'")
            if kind == "audio" and "caption" in content:
                return GraphError.invalid_parameter("Param audio['caption'] is not a valid parameter")
        elif kind == "interactive":
            return self._check_interactive(content)
        else:  # template
            name = content.get("name")
            language = content.get("language")
            if not isinstance(name, str) or not isinstance(language, dict) or not language.get("code"):
                return GraphError(
                    400, 100, "(#100) The parameter template['name'] and template['language'] are required."
                )
            if self.templates is not None and name not in self.templates:
                details = f"template name ({name}) does not exist in {language['code']}"
                return GraphError(404, 132001, "(#132001) Template name does not exist in the translation", details)
        return None

    def _check_interactive(self, content: dict[str, Any]) -> GraphError | None:
        if content.get("type") != "button":
            return GraphError.invalid_parameter("Param interactive['type'] must be one of {button, list, ...}")
        text = (content.get("body") or {}).get("text") if isinstance(content.get("body"), dict) else None
        if not isinstance(text, str) or not text:
            return GraphError(400, 100, "(#100) The parameter interactive['body']['text'] is required.")
        if _units(text) > 1024:
            return GraphError.invalid_parameter(
                "Param interactive['body']['text'] must be at most 1024 characters long."
            )
        action = content.get("action")
        buttons = action.get("buttons") if isinstance(action, dict) else None
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return GraphError(
                400, 131009, "(#131009) Parameter value is not valid", "Buttons count invalid. Min 1, Max 3"
            )
        ids = []
        for button in buttons:
            reply = button.get("reply") if isinstance(button, dict) else None
            if not isinstance(reply, dict) or button.get("type") != "reply":
                return GraphError.invalid_parameter("Param interactive['action']['buttons'][...]['type'] must be reply")
            title, identifier = reply.get("title"), reply.get("id")
            if not isinstance(title, str) or not 1 <= _units(title) <= 20:
                details = "Button title length invalid. Min length: 1, Max length: 20"
                return GraphError(400, 131009, "(#131009) Parameter value is not valid", details)
            if not isinstance(identifier, str) or not 1 <= len(identifier) <= 256:
                details = "Button id length invalid. Min length: 1, Max length: 256"
                return GraphError(400, 131009, "(#131009) Parameter value is not valid", details)
            ids.append(identifier)
        if len(set(ids)) != len(ids):
            return GraphError(400, 131009, "(#131009) Parameter value is not valid", "Duplicate button ids")
        return None
