"""Console fixtures: operators with passwords, a browser-like HTTP client (cookies, a client address of its
own), and a helper that signs in through the form as a person would.

The browser tests (test_browser.py and later ones) use ``console_server``, ``chromium`` and ``page``: a real
server process and Debian's Chromium (see tests/console/browser.py).
"""

from __future__ import annotations

import os
import random
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.console.browser import CHROMIUM, DESKTOP, REQUIRE_ENV, chromium_missing, console_server_process, watch
from threadline.config import Settings
from threadline.console import service as console
from threadline.models import UserRole
from threadline.users import service as users

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class OperatorAccount:
    """A user of ``tenant``'s workspace who can sign in to the console."""

    tenant: Tenant
    email: str
    password: str
    user_public_id: str
    role: UserRole


async def make_operator(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    *,
    role: UserRole = UserRole.OPERATOR,
    password: str | None = PASSWORD,
    email: str | None = None,
    first_name: str | None = "Ada",
    last_name: str | None = "Lovelace",
) -> OperatorAccount:
    email = email or f"op-{uuid.uuid4().hex[:10]}@example.com"
    async with sessionmaker() as session, session.begin():
        user = await console.create_operator(
            session,
            workspace_id=tenant.workspace_id,
            email=email,
            role=role,
            first_name=first_name,
            last_name=last_name,
        )
        if password is not None:
            await users.set_password(session, user=user, password=password)
    return OperatorAccount(tenant, email, password or "", str(user.public_id), role)


def random_address() -> str:
    """A client address of the test's own, so that one test's failed sign-ins never throttle another's."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def browser_client(app: Any, address: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address or random_address(), 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", follow_redirects=False)


@pytest.fixture
async def console_http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that keeps cookies like a browser, from an address of its own."""
    async with browser_client(app) as client:
        yield client


@pytest.fixture
async def operator(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> OperatorAccount:
    return await make_operator(sessionmaker, tenant)


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match, html[:2000]
    return match.group(1)


async def sign_in_form(client: httpx.AsyncClient) -> str:
    """Open the sign-in page (which sets the form cookie); its CSRF token."""
    page = await client.get("/console/sign-in")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def submit_sign_in(
    client: httpx.AsyncClient, email: str, password: str, *, workspace: str | None = None, csrf: str | None = None
) -> httpx.Response:
    token = csrf if csrf is not None else await sign_in_form(client)
    data = {"csrf_token": token, "email": email, "password": password}
    if workspace is not None:
        data["workspace"] = workspace
    return await client.post("/console/sign-in", data=data)


async def sign_in(client: httpx.AsyncClient, account: OperatorAccount) -> str:
    """Sign in through the form; the CSRF token of the session (from the inbox page)."""
    r = await submit_sign_in(client, account.email, account.password)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/inbox"
    inbox = await client.get("/console/inbox")
    assert inbox.status_code == 200, inbox.text
    return csrf_of(inbox.text)


# ------------------------------------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def console_server(database_url: str, settings: Settings) -> Iterator[str]:
    """The base URL of a real server process on the test database (no workers), for the module's tests."""
    with console_server_process(database_url, settings) as base:
        yield base


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a browser Playwright downloads)."""
    missing = chromium_missing()
    if missing is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"the browser tests must run here ({REQUIRE_ENV}=1): {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(chromium: Any) -> AsyncIterator[Any]:
    """A page in a fresh context (no cookies), 1280x800, recording its console errors (``page_errors``)."""
    # Reduced motion: the console's CSS then has no transitions, so a screenshot never catches one half done.
    context = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    watch(page)
    try:
        yield page
    finally:
        await context.close()
