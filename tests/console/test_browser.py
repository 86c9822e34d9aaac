"""The console in a real browser (Debian's Chromium) against a real server process: sign in through the form,
land on the inbox, sign out; screenshots at a laptop's size and a phone's."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.console.browser import PHONE, page_errors, screenshot, sign_in_in_browser
from tests.console.conftest import make_operator

Maker = async_sessionmaker[AsyncSession]


async def test_sign_in_through_the_form_see_the_inbox_and_sign_out(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")

    await page.goto(f"{base}/console")
    await page.wait_for_url(f"{base}/console/sign-in**")
    await screenshot(page, "sign-in-1280x800")
    # A wrong password first: the form says so and keeps the email.
    await page.get_by_label("Email").fill(account.email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("alert").filter(has_text="Wrong email or password.").wait_for()
    assert await page.get_by_label("Email").input_value() == account.email

    await sign_in_in_browser(page, base, account.email, account.password)
    header = page.locator("header.topbar")
    assert tenant.name in await header.inner_text()
    assert "Ada Lovelace" in await header.inner_text()
    for view in ("Needs a human", "Mine", "Unassigned", "All"):
        assert await page.get_by_role("link", name=view).is_visible(), view
    assert await page.get_by_text("Select a conversation").is_visible()
    # htmx and its SSE extension loaded from the package, configured from the <meta>: no inline style injected.
    loaded = await page.evaluate(
        "() => ({version: window.htmx && htmx.version, indicator: htmx.config.includeIndicatorStyles,"
        " eval: htmx.config.allowEval, styles: document.querySelectorAll('style').length})"
    )
    assert loaded == {"version": "2.0.11", "indicator": False, "eval": False, "styles": 0}, loaded
    await screenshot(page, "inbox-1280x800")

    await page.set_viewport_size(PHONE)
    await page.reload()
    assert not await page.locator("#sidebar").is_visible()  # off-canvas until the menu opens it
    assert await page.get_by_text("No conversations yet").is_visible()
    await screenshot(page, "inbox-390x844")
    menu = page.get_by_role("button", name="Menu")
    await menu.click()
    await page.get_by_role("link", name="Agents").wait_for(state="visible")
    assert await menu.get_attribute("aria-expanded") == "true"
    await screenshot(page, "inbox-menu-390x844")
    await page.keyboard.press("Escape")
    assert await menu.get_attribute("aria-expanded") == "false"

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{base}/console/sign-in")
    await page.goto(f"{base}/console/inbox")
    await page.wait_for_url(f"{base}/console/sign-in?next=/console/inbox")
    # No CSP violation and no script error on any page; the one error logged is the refused sign-in's 401.
    assert page_errors(page) == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"], (
        page_errors(page)
    )
