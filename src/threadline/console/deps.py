"""FastAPI dependencies of the console: the signed-in operator, the role a page needs, the CSRF check.

Routes take ``OperatorDep`` (any signed-in operator of the workspace) or ``AdminDep`` (an admin); a
signed-out request never reaches them (a page redirects to sign-in, an htmx request gets a 401). Every
state-changing request carries the CSRF token: the session's once signed in (forms as a hidden field, htmx
as a header set by static/console.js from a ``<meta>``), the form cookie's before.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qs

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.console import service
from threadline.console.service import Operator
from threadline.console.web import CSRF_FIELD, CSRF_HEADER, FORM_COOKIE, PREFIX, SESSION_COOKIE, SignInRequired
from threadline.errors import Forbidden
from threadline.models import UserRole
from threadline.web.deps import session_of
from threadline.web.session import SAFE_METHODS

log = structlog.get_logger(__name__)

_OPERATOR = "console_operator"  # request state: the operator of this request, once looked up
_FORM = "console_form"  # request state: the parsed form body
MAX_FORM_FIELDS = 50
SIGNED_OUT_FORMS = frozenset({f"{PREFIX}/sign-in", f"{PREFIX}/welcome"})  # forms shown before signing in


async def form_fields(request: Request) -> dict[str, str]:
    """The request's urlencoded form (each field's first value); empty for any other body. The body is
    already in memory (web.body read it whole before the request began)."""
    state = request.scope.setdefault("state", {})
    if _FORM in state:
        fields: dict[str, str] = state[_FORM]
        return fields
    fields = {}
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        text = (await request.body()).decode("utf-8", errors="replace")
        try:
            parsed = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError:  # more fields than that: not one of our forms
            parsed = {}
        fields = {name: values[0] for name, values in parsed.items() if values}
    state[_FORM] = fields
    return fields


async def current_operator(request: Request) -> Operator | None:
    """The operator whose session cookie this request carries, or None (looked up once per request)."""
    state = request.scope.setdefault("state", {})
    if _OPERATOR not in state:
        token = request.cookies.get(SESSION_COOKIE, "")
        state[_OPERATOR] = await service.operator_for(session_of(request), token=token) if token else None
    operator: Operator | None = state[_OPERATOR]
    return operator


async def require_operator(request: Request) -> Operator:
    operator = await current_operator(request)
    if operator is None:
        raise SignInRequired()
    if service.due_for_seen(operator):
        await _mark_seen(request, operator)
    return operator


async def _mark_seen(request: Request, operator: Operator) -> None:
    """``last_seen_at``, every few minutes: in the request's own transaction when it writes anyway; a read
    gets a short write of its own (a read request stays a read)."""
    if request.method not in SAFE_METHODS:
        await service.mark_seen(session_of(request), operator=operator)
        return
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        async with maker() as session, session.begin():
            await service.mark_seen(session, operator=operator)
    except Exception as exc:  # a statistic: never worth failing the page for
        log.warning("console.mark_seen_failed", error=type(exc).__name__)


def require_role(role: UserRole) -> Callable[[Request], Awaitable[Operator]]:
    """A dependency: the signed-in operator, who must have ``role`` (or one above it); a 403 page otherwise."""

    async def dependency(request: Request) -> Operator:
        operator = await require_operator(request)
        if not operator.may(role):
            raise Forbidden(f"this page needs the {role.value} role", code="insufficient_role")
        return operator

    return dependency


OperatorDep = Annotated[Operator, Depends(require_operator)]
AdminDep = Annotated[Operator, Depends(require_role(UserRole.ADMIN))]


async def verify_csrf(request: Request) -> None:
    """Refuse (403) a state-changing request without the right CSRF token, or one a browser says came from
    another site."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("this request came from another site", code="csrf_failed")
    presented = request.headers.get(CSRF_HEADER) or (await form_fields(request)).get(CSRF_FIELD, "")
    operator = await current_operator(request)
    expected = [operator.csrf_token] if operator is not None else []
    if operator is None or request.url.path in SIGNED_OUT_FORMS:
        # A sign-in form opened before another tab signed in still signs in (it only ever opens a session).
        expected.append(request.cookies.get(FORM_COOKIE, ""))
    if not presented or not any(
        token and hmac.compare_digest(presented.encode(), token.encode()) for token in expected
    ):
        raise Forbidden(
            "this form has expired or did not come from this console: reload the page and try again",
            code="csrf_failed",
        )
