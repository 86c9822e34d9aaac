"""The outermost layer of every request: its id (on every log line and on the response), the access log
line, and the 500 answer for anything nothing else caught. (The body's limits are web.body's.)"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.web.errors import send_error
from threadline.web.route_template import route_template
from threadline.web.surfaces import ErrorInfo

if TYPE_CHECKING:
    from threadline.metrics import Metrics

log = structlog.get_logger("threadline.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics | None = None,
        unmetered_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        # Paths left out of the request metrics (the /metrics endpoint itself).
        self.unmetered_paths = unmetered_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        began = time.perf_counter()
        status = 499  # what the access log says of a request that got no answer: the client left first
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answer here rather than in Starlette's outer error middleware, so the 500 carries the
            # request id and the surface's error format, and the traceback is logged once, with fields.
            if started:
                raise
            log.exception("request.unhandled_error", error=type(exc).__name__)
            await _send_error(
                scope, send_with_id, 500, "internal_error", "internal server error; the request id is in the logs"
            )
        finally:
            self._finished(scope, status, began)
            structlog.contextvars.clear_contextvars()

    def _finished(self, scope: Scope, status: int, began: float) -> None:
        """The access log line and the request metrics (labelled by route template, never the raw path)."""
        duration_s = time.perf_counter() - began
        route = route_template(scope)
        log.info(
            "request",
            method=scope["method"],
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(duration_s * 1000, 2),
        )
        if self.metrics is not None and scope["path"] not in self.unmetered_paths:
            self.metrics.observe_request(scope["method"], route, status, duration_s)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    type_ = "api_error" if status >= 500 else "invalid_request_error"
    await send_error(scope, send, ErrorInfo(status, type_, code, message))
