"""Twilio's Messages API on 127.0.0.1, scripted by the test that runs it (and the HTTP machinery the
WhatsApp stand-in shares: ``HTTPStandIn``, ``Drop``, ``ReceivedRequest``).

The subset threadline calls, as Twilio documents it: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``,
form-encoded (``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``), HTTP Basic auth
with the account SID and the auth token. It answers 201 with the Message resource (``sid`` ``SM`` + 32 hex
digits, ``num_segments`` as a string counted the way Twilio counts, ``price`` null, ``price_unit`` "USD",
dates in RFC 2822, status ``queued``, or ``accepted`` through a Messaging Service whose ``num_segments`` is
``"0"`` and ``from`` null), and fails with Twilio's error body ``{"code", "message", "more_info", "status"}``:
401/20003 for wrong credentials, 400/21604, 21603, 21602, 21211, 21617 for a request Twilio refuses.

    with TwilioStandIn() as twilio:
        twilio.script(TwilioError.rate_limited(retry_after_s=2), Drop(), Accept(price="-0.00790"))
        client = TwilioClient(twilio.base_url, twilio.account_sid, twilio.auth_token, allow_private=True)
        ...
        assert twilio.requests[0].form["To"] == "+15558675310"
        url, params = twilio.status_callback(sid, "delivered")  # what Twilio would POST to StatusCallback

Each request that passes the credentials takes the next scripted answer (an ``Accept`` with fields to
override, a ``TwilioError``, a ``Drop``, or a function of the ``ReceivedRequest`` returning one); with none
left it takes ``default``, and with no default it does what Twilio does: checks the form and creates the
message. Every request is recorded, whatever its fate.
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import secrets
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Accept",
    "Drop",
    "HTTPStandIn",
    "ReceivedRequest",
    "Reply",
    "TwilioError",
    "TwilioStandIn",
    "sms_segments_as_twilio_counts",
]


# ============================================================================================ shared machinery


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering, after ``delay_s``."""

    delay_s: float = 0.0


@dataclass(frozen=True)
class Reply:
    """An HTTP answer as the stand-in sends it: ``body`` as JSON, or as is when it is bytes (``text/html``,
    as a proxy in front of the provider would answer)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class ReceivedRequest:
    """One request as a stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        """The body as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def form_lists(self) -> dict[str, list[str]]:
        """The form-encoded body, every value of every field."""
        return parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)

    @property
    def form(self) -> dict[str, str]:
        """The form-encoded body, the last value of each field."""
        return {name: values[-1] for name, values in self.form_lists.items()}

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) of an HTTP Basic ``Authorization`` header, or None."""
        value = self.authorization or ""
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except ValueError:
            return None
        return (user, password) if sep else None

    @property
    def bearer_token(self) -> str | None:
        value = self.authorization or ""
        scheme, _, token = value.partition(" ")
        return token if scheme.lower() == "bearer" and token else None


class HTTPStandIn:
    """A threaded HTTP server on 127.0.0.1 with a script of answers and a record of requests. Subclasses
    answer in ``_handle`` (taking scripted answers with ``_take``); an answer's ``delay_s`` passes (cut
    short when the server closes) before it is sent, or before the connection is dropped."""

    name = "stand-in"

    def __init__(self) -> None:
        self.default: Any = None
        self._script: deque[Any] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- scripting

    def script(self, *answers: Any) -> None:
        """Queue answers for the next requests (that pass the credentials), in order."""
        with self._lock:
            self._script.extend(answers)

    def reset(self) -> None:
        """Forget the script, the default and the requests received."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self.default = None

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests have arrived; raise ``TimeoutError`` after ``timeout`` seconds."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._requests)} of {count} requests arrived in {timeout} s")
            return list(self._requests)

    def _take(self, request: ReceivedRequest) -> Any:
        """The next scripted answer (a function's result for a function), the default, or None."""
        with self._lock:
            scripted = self._script.popleft() if self._script else self.default
        return scripted(request) if callable(scripted) else scripted

    def _handle(self, request: ReceivedRequest) -> Reply | Drop:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HTTPStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30  # an idle keep-alive connection is closed after this

            def do_GET(self) -> None:
                stand_in._serve(self)

            def do_POST(self) -> None:
                stand_in._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client gone before its (slow) answer: nothing to report

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes every delayed answer
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- HTTP

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        parts = urlsplit(handler.path)
        request = ReceivedRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()
        answer = self._handle(request)
        if answer.delay_s > 0:
            self._closing.wait(answer.delay_s)
        if isinstance(answer, Drop):
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(answer.body, bytes):
            payload, content_type = answer.body, "text/html"
        else:
            payload, content_type = json.dumps(answer.body).encode(), "application/json; charset=utf-8"
        try:
            handler.send_response(answer.status)
            handler.send_header("content-type", content_type)
            handler.send_header("content-length", str(len(payload)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the client gave up waiting


# ============================================================================================ Twilio

API_VERSION = "2010-04-01"
_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_GSM = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_ESCAPED = "^{}\\[~]|€\f"


def sms_segments_as_twilio_counts(body: str) -> int:
    """The segments Twilio bills for ``body``: GSM-7 (escaped characters take two septets) 160 alone or 153
    per part, else UCS-2 (UTF-16 code units) 70 alone or 67 per part; a two-unit character stays whole."""
    if not body:
        return 0
    gsm = all(c in _GSM or c in _GSM_ESCAPED for c in body)
    if gsm:
        sizes = [2 if c in _GSM_ESCAPED else 1 for c in body]
    else:
        sizes = [len(c.encode("utf-16-le", "surrogatepass")) // 2 for c in body]
    alone, per_part = (160, 153) if gsm else (70, 67)
    if sum(sizes) <= alone:
        return 1
    parts, filled = 1, 0
    for size in sizes:
        if filled + size > per_part:
            parts, filled = parts + 1, 0
        filled += size
    return parts


@dataclass(frozen=True)
class Accept:
    """Create the message (after the usual checks), with these fields of the resource overridden."""

    status: str | None = None  # default: "queued", or "accepted" through a Messaging Service
    num_segments: str | None = None  # default: counted from the body ("0" through a Messaging Service)
    price: str | None = None
    price_unit: str = "USD"
    sid: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class TwilioError:
    """A failure with Twilio's error body."""

    status: int
    code: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def authenticate(cls) -> TwilioError:
        return cls(401, 20003, "Authenticate", {"www-authenticate": 'Basic realm="Twilio API"'})

    @classmethod
    def invalid_to(cls, to: str = "+15005550001") -> TwilioError:
        return cls(400, 21211, f"The 'To' number {to} is not a valid phone number.")

    @classmethod
    def rate_limited(cls, retry_after: str | float | None = None) -> TwilioError:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return cls(429, 20429, "Too Many Requests", headers)

    @classmethod
    def server_error(cls) -> TwilioError:
        return cls(500, 20500, "Internal Server Error")

    @classmethod
    def unavailable(cls, retry_after: str | float | None = None) -> TwilioError:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return cls(503, 20503, "Service Unavailable", headers)

    def reply(self) -> Reply:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return Reply(self.status, body, self.headers, self.delay_s)


TwilioAnswer = Accept | TwilioError | Drop | Reply


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment)  # "Thu, 30 Jul 2015 20:12:31 +0000"


class TwilioStandIn(HTTPStandIn):
    """The server. ``base_url`` is what ``https://api.twilio.com`` is to a real client. ``account_sid`` and
    ``auth_token`` are made up unless given."""

    name = "Twilio stand-in"

    def __init__(self, *, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid or _sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self._messages: dict[str, dict[str, Any]] = {}
        self._callbacks: dict[str, str | None] = {}

    def __enter__(self) -> TwilioStandIn:
        self.start()
        return self

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The Message resources created, oldest first (as answered)."""
        with self._lock:
            return list(self._messages.values())

    def message(self, sid: str) -> dict[str, Any]:
        with self._lock:
            return self._messages[sid]

    def status_callback(
        self, sid: str, status: str, *, error_code: str | None = None
    ) -> tuple[str | None, dict[str, str]]:
        """The ``StatusCallback`` URL of message ``sid`` (None if it had none) and the form fields Twilio
        POSTs there when the message moves to ``status`` (sent, delivered, undelivered, failed, read)."""
        with self._lock:
            resource = self._messages[sid]
            url = self._callbacks[sid]
        params = {
            "AccountSid": resource["account_sid"],
            "ApiVersion": API_VERSION,
            "From": resource["from"] or "+15017122661",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": resource["to"],
        }
        if resource["messaging_service_sid"]:
            params["MessagingServiceSid"] = resource["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = error_code
        return url, params

    def _handle(self, request: ReceivedRequest) -> Reply | Drop:
        match = _PATH.match(request.path)
        if match is None:
            message = f"The requested resource {request.path} was not found"
            return TwilioError(404, 20404, message).reply()
        if request.basic_auth != (self.account_sid, self.auth_token) or match["account"] != self.account_sid:
            return TwilioError.authenticate().reply()
        if request.method != "POST":
            return TwilioError(405, 20004, "Method not allowed").reply()
        answer = self._take(request)
        if isinstance(answer, TwilioError):
            return answer.reply()
        if isinstance(answer, Drop | Reply):
            return answer
        return self._create(request, answer if isinstance(answer, Accept) else Accept())

    def _create(self, request: ReceivedRequest, accept: Accept) -> Reply:
        form = request.form
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From") or None, form.get("MessagingServiceSid") or None
        if not to:
            return TwilioError(400, 21604, "A 'To' phone number is required.").reply()
        if sender is None and service is None:
            return TwilioError(400, 21603, "A 'From' phone number is required.").reply()
        if not body and "MediaUrl" not in form:
            return TwilioError(400, 21602, "Message body is required.").reply()
        if not _E164.match(to):
            return TwilioError.invalid_to(to).reply()
        if len(body.encode("utf-16-le", "surrogatepass")) // 2 > 1600:
            return TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.").reply()
        sid = accept.sid or _sid("SM")
        now = _rfc2822(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        if accept.num_segments is not None:
            segments = accept.num_segments
        else:
            segments = "0" if service is not None else str(sms_segments_as_twilio_counts(body))
        resource = {
            "body": body,
            "num_segments": segments,
            "direction": "outbound-api",
            "from": sender,
            "to": to,
            "date_updated": now,
            "price": accept.price,
            "error_message": None,
            "uri": f"{uri}.json",
            "account_sid": self.account_sid,
            "num_media": "0",
            "status": accept.status or ("accepted" if service is not None else "queued"),
            "messaging_service_sid": service,
            "sid": sid,
            "date_sent": None,
            "date_created": now,
            "error_code": None,
            "price_unit": accept.price_unit,
            "api_version": API_VERSION,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        }
        with self._lock:
            self._messages[sid] = resource
            self._callbacks[sid] = form.get("StatusCallback") or None
        return Reply(201, resource, accept.headers, accept.delay_s)
