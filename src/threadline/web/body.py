"""Every request body is read whole, bounded in size and in time, before anything else looks at the request.

A client that sends its body slowly (or never finishes it) must hold nothing while it does: no database
connection, no write lock, no idempotency claim. So this layer sits outside all of them: it reads the
body within ``timeout_s`` for the whole of it (a 408 after, and the connection closed) and at most
``max_bytes`` (a 413), then hands the application the body already in memory. After the body, the
application's ``receive`` is the server's again, so a streaming response still hears the client leave.
"""

from __future__ import annotations

import time

import anyio
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.web.errors import send_error
from threadline.web.surfaces import ErrorInfo

log = structlog.get_logger(__name__)

BODY_SCOPE_KEY = "threadline.body"


def buffered_body(scope: Scope) -> bytes:
    """The request body this layer read (empty for a request without one)."""
    body: bytes = scope.get(BODY_SCOPE_KEY, b"")
    return body


class BufferedBodyMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(scope, send, 413, "payload_too_large", _too_large(self.max_bytes))
            return
        began = time.monotonic()
        chunks: list[bytes] = []
        size = 0
        disconnected = False
        with anyio.move_on_after(self.timeout_s) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    await _refuse(scope, send, 413, "payload_too_large", _too_large(self.max_bytes))
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            log.info("request.body_timeout", received_bytes=size, waited_s=round(time.monotonic() - began, 3))
            await _refuse(
                scope,
                send,
                408,
                "request_timeout",
                f"the request body was not received within {self.timeout_s:g} seconds",
            )
            return
        if disconnected:
            return  # nobody to answer; nothing was started
        body = b"".join(chunks)
        scope[BODY_SCOPE_KEY] = body
        await self.app(scope, _replaying(body, receive), send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body once, then the server's own ``receive`` (which reports the client leaving)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _has_body(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"transfer-encoding":
            return True
        if key == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            raw = value.strip()
            return int(raw) if raw.isdigit() else None
    return None


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Answer without reading the rest of the body, and close the connection: what the client still sends
    must not be taken for its next request."""

    async def closing(message_out: Message) -> None:
        if message_out["type"] == "http.response.start":
            headers = [(k, v) for k, v in message_out.get("headers", []) if k != b"connection"]
            headers.append((b"connection", b"close"))
            message_out = {**message_out, "headers": headers}
        await send(message_out)

    await send_error(scope, closing, ErrorInfo(status, "invalid_request_error", code, message))
