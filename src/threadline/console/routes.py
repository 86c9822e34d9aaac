"""The console's pages: sign-in, the one-time link landing, sign-out, and the signed-in shell (inbox, agents).

``install(app, settings)`` mounts it all at /console (and sends / there): the router, the static files, the
security headers, the HTML error pages and the sign-in redirect.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from threadline.config import Settings
from threadline.console import agents, inbox, live, service, thread
from threadline.console.deps import current_operator, form_fields, verify_csrf
from threadline.console.service import NewSession, SignInRefused, WorkspaceNeeded
from threadline.console.web import (
    FORM_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    STATIC,
    STATIC_PREFIX,
    ConsoleHeadersMiddleware,
    SignInRequired,
    SignInThrottle,
    clear_cookie,
    page,
    render_error,
    safe_next,
    set_cookie,
    sign_in_required,
)
from threadline.errors import ThreadlineError, ValidationFailed
from threadline.users.passwords import MIN_LENGTH
from threadline.web.access import client_address
from threadline.web.deps import SessionDep, SettingsDep

log = structlog.get_logger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _throttle(request: Request) -> SignInThrottle:
    throttle: SignInThrottle = request.app.state.console_throttle
    return throttle


def _ttl(settings: Settings) -> timedelta:
    return timedelta(hours=settings.console.session_ttl_hours)


def _form_token(request: Request) -> tuple[str, bool]:
    """The CSRF token of a signed-out form: the form cookie's, or a new one (True: the cookie must be set)."""
    token = request.cookies.get(FORM_COOKIE, "")
    if 20 <= len(token) <= 100:
        return token, False
    return service.new_token(), True


def _signed_out_page(
    request: Request, settings: Settings, template: str, *, status_code: int = 200, **context: Any
) -> Response:
    token, fresh = _form_token(request)
    response = page(template, status_code=status_code, csrf_token=token, **context)
    if fresh:
        set_cookie(response, settings, FORM_COOKIE, token, expires=None)
    return response


def _signed_in(settings: Settings, new: NewSession, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, settings, SESSION_COOKIE, new.token, expires=new.expires_at)
    return response


@router.get("")
async def console_home() -> Response:
    return RedirectResponse(f"{PREFIX}/inbox", status_code=303)


# ------------------------------------------------------------------------------------------------ sign-in


@router.get("/sign-in")
async def sign_in_form(
    request: Request,
    settings: SettingsDep,
    next_: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    workspace: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if await current_operator(request) is not None:
        return RedirectResponse(safe_next(next_), status_code=303)
    return _signed_out_page(
        request,
        settings,
        "sign_in.html",
        email="",
        workspace=workspace or "",
        next=safe_next(next_),
        error=None,
        ask_workspace=False,
    )


@router.post("/sign-in")
async def sign_in(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    fields = await form_fields(request)
    email = fields.get("email", "").strip()[:320]
    password = fields.get("password", "")
    workspace = fields.get("workspace", "").strip()[:200]
    target = safe_next(fields.get("next"))
    address = client_address(request.scope, trust_forwarded=settings.server.trust_forwarded_headers)
    throttle = _throttle(request)

    def again(
        status_code: int, error: str, headers: dict[str, str] | None = None, *, ask_workspace: bool = False
    ) -> Response:
        response = _signed_out_page(
            request,
            settings,
            "sign_in.html",
            status_code=status_code,
            email=email,
            workspace=workspace,
            next=target,
            error=error,
            ask_workspace=ask_workspace,
        )
        response.headers.update(headers or {})
        return response

    refusal = await throttle.refusal(email=email, address=address)
    if refusal is not None:
        log.warning("console.sign_in_throttled", email=email, address=address, retry_after_s=refusal.reset_s)
        wait = max(1, refusal.reset_s)
        return again(
            429,
            f"Too many failed sign-ins. Try again in {wait} second{'s' if wait != 1 else ''}.",
            dict(refusal.headers()),
        )
    if not email or not password:
        return again(422, "Enter your email and your password.")
    try:
        new = await service.sign_in(
            session, email=email, password=password, workspace_name=workspace or None, ttl=_ttl(settings)
        )
    except SignInRefused:
        await throttle.failed(email=email, address=address)
        log.warning("console.sign_in_failed", email=email, address=address, workspace=workspace or None)
        return again(401, "Wrong email or password.")
    except WorkspaceNeeded:
        return again(409, "This email signs in to more than one workspace: which one?", ask_workspace=True)
    return _signed_in(settings, new, target)


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    await service.sign_out(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    clear_cookie(response, settings, SESSION_COOKIE)
    return response


# ------------------------------------------------------------------------------------------------ one-time links


def _link_invalid() -> Response:
    return page(
        "error.html",
        status_code=410,
        status=410,
        title="This link cannot be used",
        message="This sign-in link was used already, or it expired. Ask an admin for a new one "
        "(threadline users sign-in-link EMAIL), or sign in with your password.",
    )


@router.get("/welcome")
async def welcome_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    holder = await service.link_holder(session, token=token)
    if holder is None:
        return _link_invalid()
    return _signed_out_page(
        request, settings, "welcome.html", holder=holder, token=token, error=None, min_length=MIN_LENGTH
    )


@router.post("/welcome")
async def welcome(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    fields = await form_fields(request)
    token = fields.get("token", "")
    password = fields.get("password", "")
    confirm = fields.get("confirm", "")

    async def again(error: str) -> Response:
        holder = await service.link_holder(session, token=token)
        if holder is None:
            return _link_invalid()
        return _signed_out_page(
            request,
            settings,
            "welcome.html",
            status_code=422,
            holder=holder,
            token=token,
            error=error,
            min_length=MIN_LENGTH,
        )

    if password != confirm:
        return await again("The two passwords are not the same.")
    try:
        new = await service.use_link(session, token=token, password=password or None, ttl=_ttl(settings))
    except ValidationFailed as exc:
        return await again(exc.message[:1].upper() + exc.message[1:] + ".")
    except ThreadlineError:  # unknown, used or expired (or used by a concurrent request just now)
        return _link_invalid()
    return _signed_in(settings, new, f"{PREFIX}/inbox")


# ------------------------------------------------------------------------------------------------ signed in


for _pages in (inbox.router, live.router, agents.router, thread.router):  # inbox, its stream, agents, a thread
    router.include_router(_pages)


# ------------------------------------------------------------------------------------------------ mounting


async def _root() -> Response:
    return RedirectResponse(PREFIX, status_code=303)


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console at /console on ``app``. Called last by ``create_app``, so that its headers layer
    wraps every other and the console's 4xx from the outer layers (a slow body, a rate limit) carry them."""
    app.state.console_throttle = SignInThrottle.from_settings(settings, app.state.limits.stores.storage)
    app.state.surfaces.register(PREFIX, render_error)
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    app.add_middleware(ConsoleHeadersMiddleware)
