"""What every console response shares: templates (autoescaped), the security headers, the cookies, the error
page, the redirect to sign-in, and the throttle on failed sign-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from limits.aio.storage import Storage
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline import __version__
from threadline.config import Settings
from threadline.kit.ratelimit import Decision, Rates, parse_rates
from threadline.web.surfaces import ErrorInfo

PREFIX = "/console"
HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PREFIX = f"{PREFIX}/static"

SESSION_COOKIE = "threadline_console"
FORM_COOKIE = "threadline_console_form"  # the CSRF token of forms sent before signing in (double submit)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# No inline script or style anywhere: htmx is configured from a <meta> (includeIndicatorStyles off, no eval).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals["static"] = lambda path: f"{STATIC_PREFIX}/{path}?v={__version__}"
_env.globals["prefix"] = PREFIX


def page(template: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    """A whole HTML page (or a fragment, for htmx) from ``templates/``; every value is escaped."""
    context.setdefault("operator", None)
    context.setdefault("csrf_token", context["operator"].csrf_token if context["operator"] is not None else "")
    body = _env.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=headers)


def is_console_path(path: str) -> bool:
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


class ConsoleHeadersMiddleware:
    """The security headers on every console response (pages, errors, redirects, static files, the 4xx
    that the outer layers answer); HTML is never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX + "/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                if not static and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


_TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    408: "Too slow",
    409: "Conflict",
    410: "Gone",
    413: "Too large",
    422: "Check the form",
    429: "Too many requests",
}


def render_error(err: ErrorInfo) -> Response:
    """The console's error format: a page that says what went wrong (the surface registry's renderer)."""
    title = _TITLES.get(err.status_code, "Something went wrong")
    return page("error.html", status_code=err.status_code, title=title, message=err.message, status=err.status_code)


class SignInRequired(Exception):
    """Raised by the operator dependency on a signed-out request."""


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def sign_in_required(request: Request, _exc: Exception) -> Response:
    """A page sends the browser to the sign-in form (and back here after it); an htmx request gets a 401
    that tells htmx to load the sign-in page instead of swapping anything."""
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/sign-in"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target, safe='/')}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path of this site, never another site (an open redirect)."""
    default = f"{PREFIX}/inbox"
    if not value or not value.startswith(PREFIX + "/") or value.startswith(STATIC_PREFIX):
        return default
    if "//" in value or "\\" in value or any(ord(c) < 0x20 for c in value):
        return default
    return value


def secure_cookies(settings: Settings) -> bool:
    return (settings.server.public_base_url or "").lower().startswith("https://")


def set_cookie(response: Response, settings: Settings, name: str, value: str, *, expires: datetime | None) -> None:
    response.set_cookie(
        name,
        value,
        expires=expires,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="lax", secure=secure_cookies(settings))


@dataclass
class SignInThrottle:
    """Failed sign-ins per email and per client address (``console_sign_in_failures``, 5 a minute by
    default), counted in the process's rate-limit store (memory, or Redis shared by every process)."""

    rates: Rates

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage) -> SignInThrottle:
        budget = parse_rates(settings.console.sign_in_failures)
        return cls(Rates(storage, {"console_sign_in_email": budget, "console_sign_in_address": budget}))

    async def refusal(self, *, email: str, address: str) -> Decision | None:
        """The decision that refuses this attempt before any password is checked, or None when it may go on."""
        for kind, identifier in (
            ("console_sign_in_email", email.strip().lower()),
            ("console_sign_in_address", address),
        ):
            decision = await self.rates.peek(kind, identifier)
            if decision is not None and not decision.allowed:
                return decision
        return None

    async def failed(self, *, email: str, address: str) -> None:
        await self.rates.hit("console_sign_in_email", email.strip().lower())
        await self.rates.hit("console_sign_in_address", address)
