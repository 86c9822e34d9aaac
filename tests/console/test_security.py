"""The console's defences over HTTP: CSRF tokens, security headers, no inline script, signed-out requests,
roles, tenancy, and the switch that turns the console off."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_tenant
from tests.console.conftest import (
    OperatorAccount,
    browser_client,
    csrf_of,
    make_operator,
    random_address,
    sign_in,
    submit_sign_in,
)
from threadline.app import create_app
from threadline.config import Settings
from threadline.console.deps import AdminDep, OperatorDep
from threadline.console.web import FORM_COOKIE, SESSION_COOKIE
from threadline.models import UserRole

Maker = async_sessionmaker[AsyncSession]


def _assert_security_headers(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in csp.split("; ") if part}
    assert directives.get("script-src") == ["'self'"], (r.url, csp)
    assert directives.get("style-src") == ["'self'"], (r.url, csp)
    assert directives.get("frame-ancestors") == ["'none'"], (r.url, csp)
    assert directives.get("default-src") == ["'none'"], (r.url, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers.get("x-content-type-options") == "nosniff", r.url
    assert r.headers.get("referrer-policy") == "no-referrer", r.url
    assert r.headers.get("x-frame-options") == "DENY", r.url


# Inline script or style, in any of the forms a CSP without 'unsafe-inline' would block.
_INLINE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),  # a script element without src
    re.compile(r"<style\b", re.I),
    re.compile(r"\sstyle\s*=", re.I),
    re.compile(r"\son[a-z]+\s*=", re.I),  # onclick=, onload=...
    re.compile(r"javascript:", re.I),
    re.compile(r"\shx-on", re.I),  # htmx's inline handlers need eval, which is off
]


def _assert_no_inline_code(html: str) -> None:
    for pattern in _INLINE:
        match = pattern.search(html)
        assert match is None, f"inline code: {match.group(0) if match else ''!r}"


async def test_every_console_response_carries_the_security_headers(
    console_http: httpx.AsyncClient, operator: OperatorAccount
) -> None:
    signed_out = [
        await console_http.get("/"),
        await console_http.get("/console"),
        await console_http.get("/console/sign-in"),
        await console_http.get("/console/inbox"),  # a redirect
        await console_http.get("/console/welcome?token=nope"),  # an error page
        await console_http.get("/console/no-such-page"),
        await console_http.post("/console/sign-out"),  # a CSRF refusal
        await console_http.get("/console/static/console.css"),
        await console_http.get("/console/static/vendor/htmx.org-2.0.11/htmx.min.js"),
    ]
    await sign_in(console_http, operator)
    signed_in = [await console_http.get("/console/inbox"), await console_http.get("/console/agents")]
    for r in [*signed_out, *signed_in]:
        _assert_security_headers(r)
    assert [r.status_code for r in signed_out] == [303, 303, 200, 303, 410, 404, 403, 200, 200]
    for r in [signed_out[2], signed_out[4], signed_out[5], signed_out[6], *signed_in]:
        assert r.headers["content-type"].startswith("text/html"), r.url
        assert r.headers["cache-control"] == "no-store", r.url
        _assert_no_inline_code(r.text)
    assert signed_out[7].headers["content-type"].startswith("text/css")
    assert "javascript" in signed_out[8].headers["content-type"]
    # The API is not the console: its JSON answers carry none of this.
    assert "content-security-policy" not in (await console_http.get("/v1/users")).headers


async def test_htmx_is_configured_without_inline_script_or_style(console_http: httpx.AsyncClient) -> None:
    page = (await console_http.get("/console/sign-in")).text
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page)
    assert config, page[:1500]
    settings = json.loads(config.group(1))
    assert settings["includeIndicatorStyles"] is False and settings["allowEval"] is False
    assert settings["allowScriptTags"] is False
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert [s.split("?")[0] for s in scripts] == [
        "/console/static/vendor/htmx.org-2.0.11/htmx.min.js",
        "/console/static/vendor/htmx-ext-sse-2.2.4/sse.min.js",
        "/console/static/console.js",
    ]
    for src in scripts:
        r = await console_http.get(src)
        assert r.status_code == 200 and len(r.content) > 500, src
    js = (await console_http.get("/console/static/console.js")).text
    assert "X-CSRF-Token" in js and "htmx:configRequest" in js


async def test_state_changing_requests_without_the_csrf_token_are_refused(
    console_http: httpx.AsyncClient, operator: OperatorAccount
) -> None:
    csrf = await sign_in(console_http, operator)
    for data, headers in [
        ({}, {}),
        ({"csrf_token": ""}, {}),
        ({"csrf_token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}, {}),
        ({"csrf_token": console_http.cookies.get(FORM_COOKIE, "x")}, {}),  # the signed-out token, once signed in
        ({}, {"X-CSRF-Token": "wrong"}),
        ({"csrf_token": csrf}, {"Sec-Fetch-Site": "cross-site"}),  # a browser says: from another site
    ]:
        r = await console_http.post("/console/sign-out", data=data, headers=headers)
        assert r.status_code == 403, (data, headers, r.text)
        assert "reload the page" in r.text or "another site" in r.text
    assert (await console_http.get("/console/inbox")).status_code == 200  # still signed in
    # The token in the header, as htmx sends it (console.js sets it from the page's <meta>).
    r = await console_http.post("/console/sign-out", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert r.status_code == 303
    assert (await console_http.get("/console/inbox")).status_code == 303


async def test_signing_in_needs_the_form_token_of_this_browser(app: Any, operator: OperatorAccount) -> None:
    data = {"email": operator.email, "password": operator.password}
    async with browser_client(app) as client:
        r = await client.post("/console/sign-in", data=data)  # no form cookie, no token
        assert r.status_code == 403
        form = await client.get("/console/sign-in")
        r = await client.post("/console/sign-in", data={**data, "csrf_token": "forged" * 8})
        assert r.status_code == 403
        # Another browser's token (with its own cookie) is no good here either: login CSRF.
        async with browser_client(app) as other:
            theirs = csrf_of((await other.get("/console/sign-in")).text)
        r = await client.post("/console/sign-in", data={**data, "csrf_token": theirs})
        assert r.status_code == 403
        r = await client.post("/console/sign-in", data={**data, "csrf_token": csrf_of(form.text)})
        assert r.status_code == 303


async def test_signed_out_requests_reach_nothing(app: Any, operator: OperatorAccount) -> None:
    async with browser_client(app) as client:
        for path in ("/console/inbox", "/console/agents", "/console/inbox?view=mine"):
            r = await client.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in?next=/console/")
            assert operator.tenant.name not in r.text
        # An htmx request gets a 401 that sends the whole page to sign-in.
        r = await client.get("/console/inbox", headers={"HX-Request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"] == "/console/sign-in" and not r.content
        # A made-up or malformed session cookie is no session.
        for token in (b"x" * 43, b"", b"a" * 500, "\u00e9".encode(), b"\xff\xfe"):
            r = await client.get("/console/inbox", headers={"Cookie": SESSION_COOKIE.encode() + b"=" + token})
            assert r.status_code == 303, token
        # No state-changing request gets past the CSRF check without a session or a form.
        assert (await client.post("/console/sign-out")).status_code == 403
        assert (await client.post("/console/inbox")).status_code in (403, 405)


async def test_a_session_sees_only_its_own_workspace(app: Any, sessionmaker: Maker, operator: OperatorAccount) -> None:
    other = await make_operator(sessionmaker, await make_tenant(sessionmaker), first_name="Grace", last_name="Hopper")
    async with browser_client(app) as ada, browser_client(app) as grace:
        await sign_in(ada, operator)
        await sign_in(grace, other)
        mine, theirs = (await ada.get("/console/inbox")).text, (await grace.get("/console/inbox")).text
    assert operator.tenant.name in mine and other.tenant.name not in mine and "Grace" not in mine
    assert other.tenant.name in theirs and operator.tenant.name not in theirs and "Ada" not in theirs


async def test_pages_can_require_the_admin_role(
    settings: Settings, engine: Any, sessionmaker: Maker, operator: OperatorAccount
) -> None:
    app = create_app(settings, engine=engine)

    async def admin_only(who: AdminDep) -> dict[str, str]:
        return {"role": who.role.value, "workspace": who.workspace_name}

    async def anyone(who: OperatorDep) -> dict[str, str]:
        return {"role": who.role.value}

    app.add_api_route("/console/test-admin", admin_only, methods=["GET"])
    app.add_api_route("/console/test-anyone", anyone, methods=["GET"])
    admin = await make_operator(sessionmaker, operator.tenant, role=UserRole.ADMIN)
    async with browser_client(app) as as_operator, browser_client(app) as as_admin:
        await sign_in(as_operator, operator)
        await sign_in(as_admin, admin)
        r = await as_operator.get("/console/test-admin")
        assert r.status_code == 403 and "needs the admin role" in r.text
        _assert_security_headers(r)
        assert (await as_operator.get("/console/test-anyone")).json() == {"role": "operator"}
        assert (await as_admin.get("/console/test-admin")).json() == {
            "role": "admin",
            "workspace": operator.tenant.name,
        }
        # A role changed through /v1 applies at the next request, to sessions already open.
        r = await as_admin.patch(
            f"/v1/users/{operator.user_public_id}", json={"role": "admin"}, headers=operator.tenant.headers
        )
        assert r.status_code == 200 and r.json()["role"] == "admin"
        assert (await as_operator.get("/console/test-admin")).status_code == 200


async def test_the_console_can_be_turned_off(settings: Settings, engine: Any, operator: OperatorAccount) -> None:
    app = create_app(settings.replace(console_enabled=False), engine=engine)
    transport = httpx.ASGITransport(app=app, client=(random_address(), 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path in ("/", "/console", "/console/sign-in", "/console/static/console.css"):
            r = await client.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found"
        r = await client.post("/console/sign-in", data={"email": operator.email, "password": operator.password})
        assert r.status_code == 404


async def test_sign_in_form_is_plain_html_that_works_without_javascript(console_http: httpx.AsyncClient) -> None:
    page = (await console_http.get("/console/sign-in")).text
    assert '<form class="form" method="post" action="/console/sign-in">' in page
    assert 'type="password" name="password"' in page and 'autocomplete="current-password"' in page


async def test_an_operator_may_be_signed_in_in_two_browsers_at_once(
    console_http: httpx.AsyncClient, operator: OperatorAccount, app: Any
) -> None:
    await sign_in(console_http, operator)
    async with browser_client(app) as second:
        assert (await submit_sign_in(second, operator.email, operator.password)).status_code == 303
        assert (await second.get("/console/inbox")).status_code == 200
    assert (await console_http.get("/console/inbox")).status_code == 200
