"""Signing in to the console and out of it, through its forms, as a browser does (cookies, redirects)."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_tenant
from tests.console.conftest import (
    PASSWORD,
    OperatorAccount,
    browser_client,
    csrf_of,
    make_operator,
    random_address,
    sign_in,
    sign_in_form,
    submit_sign_in,
)
from threadline.app import create_app
from threadline.config import Settings
from threadline.console import deps, routes, service
from threadline.console.web import FORM_COOKIE, SESSION_COOKIE
from threadline.users.service import find_user

Maker = async_sessionmaker[AsyncSession]


def _set_cookie(response: httpx.Response, name: str) -> SimpleCookie:
    """The Set-Cookie header of ``response`` that sets ``name``, parsed (attributes included)."""
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            return cookie
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


async def test_sign_in_lands_on_the_inbox_and_sign_out_ends_the_session(
    app: Any, console_http: httpx.AsyncClient, operator: OperatorAccount
) -> None:
    csrf = await sign_in(console_http, operator)
    inbox = await console_http.get("/console/inbox")
    assert operator.tenant.name in inbox.text and "Ada Lovelace" in inbox.text
    assert f'<meta name="csrf-token" content="{csrf}">' in inbox.text
    token = console_http.cookies[SESSION_COOKIE]

    out = await console_http.post("/console/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert SESSION_COOKIE not in console_http.cookies  # the browser is told to forget it
    assert (await console_http.get("/console/inbox")).status_code == 303
    # The session is gone on the server too: the old token signs nobody in.
    async with browser_client(app) as replay:
        r = await replay.get("/console/inbox", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")


async def test_session_cookie_is_http_only_same_site_lax_and_scoped_to_the_console(
    console_http: httpx.AsyncClient, operator: OperatorAccount
) -> None:
    form = await console_http.get("/console/sign-in")
    form_cookie = _set_cookie(form, FORM_COOKIE)[FORM_COOKIE]
    assert form_cookie["httponly"] and form_cookie["samesite"] == "lax" and form_cookie["path"] == "/console"
    r = await submit_sign_in(console_http, operator.email, operator.password, csrf=csrf_of(form.text))
    assert r.status_code == 303, r.text
    cookie = _set_cookie(r, SESSION_COOKIE)[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "lax"
    assert cookie["path"] == "/console"
    assert not cookie["secure"]  # plain http here: a Secure cookie would never come back
    assert cookie["expires"]
    assert len(cookie.value) >= 40  # 32 random bytes


async def test_with_an_https_public_url_the_cookies_are_secure(
    settings: Settings, engine: Any, operator: OperatorAccount
) -> None:
    app = create_app(settings.replace(public_base_url="https://chat.example.com"), engine=engine)
    transport = httpx.ASGITransport(app=app, client=(random_address(), 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        form = await client.get("/console/sign-in")
        assert _set_cookie(form, FORM_COOKIE)[FORM_COOKIE]["secure"] is True
        r = await submit_sign_in(client, operator.email, operator.password, csrf=csrf_of(form.text))
        assert r.status_code == 303, r.text
        assert _set_cookie(r, SESSION_COOKIE)[SESSION_COOKIE]["secure"] is True
        assert (await client.get("/console/inbox")).status_code == 200


async def test_wrong_password_or_unknown_email_is_refused_with_the_same_answer(
    console_http: httpx.AsyncClient, operator: OperatorAccount
) -> None:
    wrong = await submit_sign_in(console_http, operator.email, "not the password")
    unknown = await submit_sign_in(console_http, "nobody@example.com", operator.password)
    for r in (wrong, unknown):
        assert r.status_code == 401, r.text
        assert "Wrong email or password." in r.text
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert f'value="{operator.email}"' in wrong.text  # the form keeps the email, never the password
    assert "not the password" not in wrong.text
    assert (await console_http.get("/console/inbox")).status_code == 303


async def test_email_is_matched_in_any_case(console_http: httpx.AsyncClient, operator: OperatorAccount) -> None:
    r = await submit_sign_in(console_http, operator.email.upper(), operator.password)
    assert r.status_code == 303, r.text


async def test_a_user_without_a_password_cannot_sign_in(
    console_http: httpx.AsyncClient, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    nopass = await make_operator(sessionmaker, operator.tenant, password=None)
    r = await submit_sign_in(console_http, nopass.email, "")
    assert r.status_code == 422
    r = await submit_sign_in(console_http, nopass.email, PASSWORD)
    assert r.status_code == 401


async def test_after_sign_in_the_browser_goes_where_it_was_going_never_to_another_site(
    console_http: httpx.AsyncClient, operator: OperatorAccount
) -> None:
    r = await console_http.get("/console/agents")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?next=/console/agents"
    form = await console_http.get(r.headers["location"])
    assert 'name="next" value="/console/agents"' in form.text
    data = {"csrf_token": csrf_of(form.text), "email": operator.email, "password": operator.password}
    r = await console_http.post("/console/sign-in", data={**data, "next": "/console/agents"})
    assert r.headers["location"] == "/console/agents"
    for evil in ("https://evil.example/", "//evil.example/console/", "/console/..//evil", "/v1/users"):
        r = await console_http.post("/console/sign-in", data={**data, "next": evil})
        assert r.status_code == 303 and r.headers["location"] == "/console/inbox", evil
    # Signed in, the form sends the browser on at once.
    r = await console_http.get("/console/sign-in?next=/console/agents")
    assert r.status_code == 303 and r.headers["location"] == "/console/agents"


async def _failures_before_refusal(attempt: Callable[[int], Awaitable[httpx.Response]]) -> int:
    """How many failed sign-ins ``attempt`` made before the first 429. The budget (5 a minute) is counted with a
    sliding-window counter (kit.ratelimit): failures that straddle the turn of a minute weigh a little less, so
    the refusal may come a failure or two after the fifth, never before it."""
    for n in range(12):
        r = await attempt(n)
        if r.status_code == 429:
            return n
        assert r.status_code == 401, r.text
    raise AssertionError("twelve failed sign-ins and no 429")


async def test_failed_sign_ins_are_throttled_per_email_with_retry_after(app: Any, operator: OperatorAccount) -> None:
    # Failures for one email, each from an address of its own: then every attempt is refused wherever it comes
    # from, the right password included, without being checked.
    async def wrong(_: int) -> httpx.Response:
        async with browser_client(app) as client:
            return await submit_sign_in(client, operator.email, "wrong password")

    assert 5 <= await _failures_before_refusal(wrong) <= 7
    async with browser_client(app) as client:
        r = await submit_sign_in(client, operator.email, operator.password)
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in r.text
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
        assert (await client.get("/console/inbox")).status_code == 303


async def test_failed_sign_ins_are_throttled_per_client_address(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    address = random_address()
    async with browser_client(app, address) as client:

        async def guess(n: int) -> httpx.Response:
            return await submit_sign_in(client, f"guess{n}@example.com", "guess")

        assert 5 <= await _failures_before_refusal(guess) <= 7
        r = await submit_sign_in(client, operator.email, operator.password)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # The same operator from another address signs in: the address was throttled, not the email.
    async with browser_client(app) as other:
        assert (await submit_sign_in(other, operator.email, operator.password)).status_code == 303


async def test_an_email_in_two_workspaces_signs_in_to_the_one_named(
    app: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    elsewhere = await make_tenant(sessionmaker)
    twin = await make_operator(sessionmaker, elsewhere, email=operator.email.upper(), first_name="Grace")
    async with browser_client(app) as client:
        r = await submit_sign_in(client, operator.email, PASSWORD)
        assert r.status_code == 409 and 'name="workspace"' in r.text, r.text
        r = await submit_sign_in(client, operator.email, PASSWORD, workspace=elsewhere.name)
        assert r.status_code == 303, r.text
        inbox = (await client.get("/console/inbox")).text
        assert elsewhere.name in inbox and "Grace" in inbox
        assert operator.tenant.name not in inbox
    # With a password of its own in one workspace only, no workspace needs naming.
    async with sessionmaker() as session, session.begin():
        from threadline.console.repository import users_by_email
        from threadline.users.service import set_password

        ((user, _),) = await users_by_email(session, twin.email, workspace_name=elsewhere.name, limit=5)
        await set_password(session, user=user, password="another password entirely")
    async with browser_client(app) as client:
        assert (await submit_sign_in(client, operator.email, PASSWORD)).status_code == 303
        assert operator.tenant.name in (await client.get("/console/inbox")).text


@pytest.fixture
def console_logs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the console's modules log, as structlog entries (the app's loggers are cached at their first use,
    so each module's logger is swapped for one that records)."""
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()),
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),  # whatever the app's level
    )
    for module in (routes, service, deps):
        monkeypatch.setattr(module, "log", logger)
    return capture.entries


async def test_passwords_never_reach_the_logs(
    app: Any,
    sessionmaker: Maker,
    operator: OperatorAccount,
    caplog: pytest.LogCaptureFixture,
    console_logs: list[dict[str, Any]],
) -> None:
    wrong = "wrong-" + PASSWORD.replace(" ", "-")
    new = "brand new password 42"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements with their parameters
    async with browser_client(app) as client:
        assert (await submit_sign_in(client, operator.email, wrong)).status_code == 401
        csrf = await sign_in(client, operator)
        assert (await client.post("/console/sign-out", data={"csrf_token": csrf})).status_code == 303
    async with sessionmaker() as session, session.begin():
        user = await find_user(session, workspace_id=operator.tenant.workspace_id, ref=operator.email)
        assert user is not None
        token = await service.issue_link(session, user=user, ttl=timedelta(hours=1))
    async with browser_client(app) as client:
        await sign_in_form(client)
        form_token = client.cookies[FORM_COOKIE]
        r = await client.post(
            "/console/welcome", data={"csrf_token": form_token, "token": token, "password": new, "confirm": new}
        )
        assert r.status_code == 303, r.text
    events = [entry["event"] for entry in console_logs]
    assert events == ["console.sign_in_failed", "console.signed_in", "console.link_used", "console.signed_in"]
    assert console_logs[0]["email"] == operator.email  # failures are logged with the email, never the password
    logged = caplog.text + repr(console_logs)
    assert "INSERT INTO console_sessions" in logged  # the statements were being captured, parameters and all
    for secret in (wrong, PASSWORD, new, token):
        assert secret not in logged
