"""Exception handlers: every failure leaves as a 4xx/5xx in the surface's own format, never a trace."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope, Send

from threadline.errors import ThreadlineError
from threadline.web.route_template import allowed_methods
from threadline.web.surfaces import ErrorInfo, SurfaceRegistry

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "unauthenticated"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "validation_error"),
    429: ("rate_limit_error", "rate_limited"),
}


def _registry(request: Request) -> SurfaceRegistry:
    registry: SurfaceRegistry = request.app.state.surfaces
    return registry


def render(request: Request, err: ErrorInfo) -> Response:
    return _registry(request).renderer_for(request.url.path)(err)


async def send_error(scope: Scope, send: Send, err: ErrorInfo) -> None:
    """Answer from a pure-ASGI middleware (outside FastAPI's handlers) in the surface's format."""
    response = render(Request(scope), err)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _loc_to_param(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else ".".join(str(p) for p in loc)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON (``application/json`` or ``application/<anything>+json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def invalid_json(doc: str, pos: int, reason: str) -> tuple[str, dict[str, Any]]:
    """The message and details of a 400 for a body that is not valid JSON: what the parser said, and where
    (line, column and character position, as Python's ``json`` counts them)."""
    pos = max(0, min(pos, len(doc)))
    line = doc.count("\n", 0, pos) + 1
    column = pos - doc.rfind("\n", 0, pos)
    where = f"line {line}, column {column} (character {pos})"
    return f"the body is not valid JSON: {reason} at {where}", {"line": line, "column": column, "position": pos}


def not_json_hint(content_type: str | None) -> str:
    """What to tell a client whose body came as something other than JSON (curl's ``-d`` sends a form)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    sent = f"it came as {media}" if media else "it came without a Content-Type"
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent += " (a form; with curl, -d sends that unless you add -H 'Content-Type: application/json')"
    return f"the body must be JSON, sent with Content-Type: application/json; {sent}"


def _body_error(request: Request, exc: RequestValidationError) -> ErrorInfo | None:
    """A 400 when the body could not be read as JSON at all: malformed, or sent as a form or other media.
    None when it was JSON (the field errors are then 422s)."""
    errors = exc.errors()
    syntax = next((e for e in errors if e.get("type") == "json_invalid" and len(e.get("loc", ())) == 2), None)
    if syntax is not None and isinstance(exc.body, str):
        reason = str((syntax.get("ctx") or {}).get("error") or "cannot be parsed")
        message, details = invalid_json(exc.body, int(syntax["loc"][1]), reason)
        return ErrorInfo(400, "invalid_request_error", "invalid_json", message, None, details)
    content_type = request.headers.get("content-type")
    # FastAPI parses a body as JSON only when its Content-Type says JSON; otherwise the model is handed raw
    # bytes (or form data) and fails with an error about the whole body.
    if exc.body and not isinstance(exc.body, (dict, list)) and not is_json_media_type(content_type):
        if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            return ErrorInfo(400, "invalid_request_error", "invalid_json", not_json_hint(content_type))
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ThreadlineError)
    async def _threadline_error(request: Request, exc: ThreadlineError) -> Response:
        response = render(
            request,
            ErrorInfo(exc.status_code, exc.type, exc.code, exc.message, exc.param, exc.details),
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        if (body_error := _body_error(request, exc)) is not None:
            return render(request, body_error)
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = _loc_to_param(first.get("loc", ()))
        message = f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg", "invalid"))
        details = {
            "errors": [
                {"param": _loc_to_param(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
                for e in errors
            ]
        }
        return render(request, ErrorInfo(422, "invalid_request_error", "validation_error", message, param, details))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        type_, code = _HTTP_CODES.get(exc.status_code, ("api_error", "http_error"))
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's "error parsing the body" of a JSON body
            bad = exc.__cause__
            code, message = "invalid_json", f"the body is not valid JSON: it is not UTF-8 text (byte {bad.start})"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        response = render(request, ErrorInfo(exc.status_code, type_, code, message))
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            methods = allowed_methods(request.app, request.url.path)
            message = f"{request.method} is not allowed here; allowed: {', '.join(methods) or 'none'}"
            response = render(request, ErrorInfo(405, type_, code, message))
            if methods:
                response.headers["Allow"] = ", ".join(methods)
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> Response:
        # Services map the constraint violations they expect; this is the net under them.
        log.warning("request.integrity_error", error=str(exc.orig).splitlines()[0][:200])
        return render(
            request,
            ErrorInfo(409, "conflict_error", "conflict", "the request conflicts with the current state of a resource"),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("request.unhandled_error", error=type(exc).__name__)
        return render(
            request,
            ErrorInfo(500, "api_error", "internal_error", "internal server error; the request id is in the logs"),
        )
