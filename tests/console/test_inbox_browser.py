"""The inbox in a real browser (Debian's Chromium) against a real server process: threads by last activity, a
message POSTed through /v1 moving its thread to the top of the open inbox with no reload, search, filters kept in
the address, hostile content shown as text; screenshots at a laptop's size and a phone's."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.console.browser import PHONE, page_errors, screenshot, sign_in_in_browser
from tests.console.conftest import OperatorAccount, make_operator
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.integrations.helpers import create_integration, sms_body, whatsapp_body

Maker = async_sessionmaker[AsyncSession]

# Recorded before any script of the page runs (Playwright's init scripts are not page scripts: the CSP allows
# them): whether the inbox's event stream has opened, and the dialogs nobody should see.
WATCH_SSE = """
window.__sseOpened = 0;
document.addEventListener('htmx:sseOpen', function () { window.__sseOpened += 1; });
"""
HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
async def v1(console_server: str, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """The /v1 API of the server under test, as the tenant's admin key: how a test client writes messages."""
    async with httpx.AsyncClient(base_url=console_server, headers=tenant.headers, timeout=10) as client:
        yield client


async def _order(page: Any) -> list[str]:
    ids: list[str] = await page.locator("#thread-list .thread-row").evaluate_all(
        "rows => rows.map(r => r.dataset.threadId)"
    )
    return ids


async def _open_inbox(page: Any, base: str, account: OperatorAccount) -> None:
    await page.add_init_script(WATCH_SSE)
    await sign_in_in_browser(page, base, account.email, account.password)
    await page.wait_for_function("() => window.__sseOpened > 0")


async def _a_busy_inbox(v1: httpx.AsyncClient, account: OperatorAccount) -> dict[str, Any]:
    """Five conversations as a support team would have them: on three channels, tagged, assigned, one handed to
    a human and waiting, one blocked. Returns the threads by name, the oldest activity first."""
    prompt = (
        "You answer for Acme Bikes, a bicycle shop in Zurich.\nBe brief and friendly. Hand the conversation to a "
        "person when someone asks for a refund over CHF 200 or is upset."
    )
    shop = await create_agent(
        v1,
        name="Acme Bikes support",
        description="Answers customers on SMS, WhatsApp and the website chat.",
        version={
            "mode": "PROMPT",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "system_prompt": prompt,
            "max_tokens": 300,
        },
    )
    sms = await create_integration(v1, sms_body())
    whatsapp = await create_integration(v1, whatsapp_body())
    vip = (await v1.post("/v1/tags", json={"name": "VIP", "color": "purple"})).json()
    refund = (await v1.post("/v1/tags", json={"name": "refund", "color": "orange"})).json()
    people = [
        ("Grace Hopper", "sms", "+14155550123", sms["id"]),
        ("Alan Turing", "whatsapp", "+447700900123", whatsapp["id"]),
        ("Katherine Johnson", "api", None, None),
        ("Margaret Hamilton", "sms", "+16175550199", sms["id"]),
        ("Linus Pauling", "api", None, None),
    ]
    threads: dict[str, Any] = {}
    for name, channel, address, integration in people:
        user_fields: dict[str, Any] = {"display_name": name}
        if address:
            user_fields.update(channel=channel, address=address)
        end_user = await create_end_user(v1, **user_fields)
        fields: dict[str, Any] = {"agent_id": shop["id"], "end_user_id": end_user["id"], "active": False}
        if integration:
            fields["integration_id"] = integration
        threads[name] = await create_thread(v1, **fields)
    grace, alan, katherine, margaret, linus = (threads[p[0]]["id"] for p in people)
    await v1.patch(f"/v1/threads/{grace}", json={"tags": [vip["id"]], "assigned_to": [account.user_public_id]})
    await v1.patch(f"/v1/threads/{alan}", json={"active": True, "tags": [refund["id"]]})
    await v1.patch(f"/v1/threads/{margaret}", json={"blocked": True, "active": True})
    await v1.patch(f"/v1/threads/{linus}", json={"active": True, "assigned_to": [account.user_public_id]})
    await post_message(v1, grace, "My order #4521 arrived with a bent wheel.")
    await post_message(v1, grace, "Can someone call me back?")
    await post_message(v1, alan, "I'd like a refund for the brake pads, please.")
    await post_message(v1, alan, "Of course! I've started the refund: 3-5 working days.", role="assistant")
    await post_message(v1, katherine, "Do you repair carbon frames? Mine has a crack near the seat post.")
    await post_message(v1, margaret, "WIN A FREE BIKE!!! click here")
    await post_message(v1, linus, "Is the shop open on Saturday?")
    await post_message(v1, linus, "We're open 9:00 to 16:00 on Saturdays.", role="assistant")
    return threads


async def test_the_inbox_lists_threads_by_last_activity_and_a_new_message_moves_one_up_live(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant, v1: httpx.AsyncClient
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")
    threads = await _a_busy_inbox(v1, account)
    ids = {name: t["id"] for name, t in threads.items()}
    newest_first = [ids[n] for n in ("Linus Pauling", "Margaret Hamilton", "Katherine Johnson", "Alan Turing")]
    newest_first.append(ids["Grace Hopper"])

    await _open_inbox(page, base, account)
    assert await _order(page) == newest_first
    grace = page.locator(f'.thread-row[data-thread-id="{ids["Grace Hopper"]}"]')
    assert "Grace Hopper" in await grace.inner_text()
    assert "+14155550123" in await grace.inner_text()
    assert await grace.locator(".unread").text_content() == "2 unread"
    assert await grace.locator(".chip-needs").is_visible()
    assert await grace.locator(".tag").inner_text() == "VIP"
    assert await grace.locator(".assignee").get_attribute("title") == "Assigned to Ada Lovelace"
    assert await page.locator("#count-needs_human").inner_text() == "2"  # Grace and Katherine wait for a human
    assert await page.locator("#count-all").inner_text() == "5"
    await screenshot(page, "inbox-list-1280x800")

    # A message through /v1 (a test client, not the page): the thread goes to the top with its unread count up,
    # and the views' counts follow, within 2 s, with no reload.
    await page.evaluate("() => { window.__sameDocument = true; }")
    started = time.monotonic()
    await post_message(v1, ids["Grace Hopper"], "Hello? Still waiting for that call.")
    await page.wait_for_function(
        "id => document.querySelector('#thread-list .thread-row')?.dataset.threadId === id",
        arg=ids["Grace Hopper"],
        timeout=2000,
    )
    assert time.monotonic() - started < 2.0
    assert await _order(page) == [ids["Grace Hopper"], *newest_first[:-1]]
    assert await grace.locator(".unread").text_content() == "3 unread"
    assert "Still waiting for that call" in await grace.locator(".row-excerpt").inner_text()
    # Alan's thread is handed to a human and he writes again: "needs a human" counts it, live too.
    await v1.patch(f"/v1/threads/{ids['Alan Turing']}", json={"active": False})
    await post_message(v1, ids["Alan Turing"], "Actually, can I talk to a person?")
    await page.wait_for_function(
        "() => document.querySelector('#count-needs_human').textContent.trim() === '3'", timeout=2000
    )
    assert await page.locator("#inbox-head-count").inner_text() == "5"
    assert await page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    assert page_errors(page) == [], page_errors(page)


async def test_views_and_filters_live_in_the_address_and_survive_a_reload(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant, v1: httpx.AsyncClient
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant)
    threads = await _a_busy_inbox(v1, account)
    ids = {name: t["id"] for name, t in threads.items()}
    await _open_inbox(page, base, account)

    await page.locator("#inbox-views").get_by_role("link", name="Mine").click()
    await page.wait_for_url(f"{base}/console/inbox?view=mine")
    assert await _order(page) == [ids["Linus Pauling"], ids["Grace Hopper"]]
    assert await page.locator("#inbox-head .pane-title").inner_text() == "Mine\n2"
    await page.get_by_label("Channel").select_option("sms")
    await page.wait_for_url(f"{base}/console/inbox?view=mine&channel=sms")
    assert await _order(page) == [ids["Grace Hopper"]]
    await page.reload()
    assert await _order(page) == [ids["Grace Hopper"]]
    assert await page.get_by_label("Channel").input_value() == "sms"
    assert await page.locator(".view.is-active").get_attribute("data-view") == "mine"
    # Another view keeps the filter; "Clear filters" keeps the view.
    await page.locator("#inbox-views").get_by_role("link", name="All").click()
    await page.wait_for_url(f"{base}/console/inbox?channel=sms")
    assert await _order(page) == [ids["Margaret Hamilton"], ids["Grace Hopper"]]
    await page.get_by_label("Blocked").select_option("yes")
    await page.wait_for_url(f"{base}/console/inbox?channel=sms&blocked=yes")
    assert await _order(page) == [ids["Margaret Hamilton"]]
    await page.get_by_role("link", name="Clear filters").click()
    await page.wait_for_url(f"{base}/console/inbox")
    assert len(await _order(page)) == 5
    # Back goes to the filtered list again.
    await page.go_back()
    await page.wait_for_url(f"{base}/console/inbox?channel=sms&blocked=yes")
    await page.wait_for_function("() => document.querySelectorAll('#thread-list .thread-row').length === 1")
    assert page_errors(page) == [], page_errors(page)


async def test_search_finds_a_message_and_its_result_points_into_its_thread(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant, v1: httpx.AsyncClient
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant)
    threads = await _a_busy_inbox(v1, account)
    word = f"sprocket{uuid.uuid4().hex[:6]}"
    target = threads["Katherine Johnson"]["id"]
    found = await post_message(v1, target, f"Also, the {word} on my fixie rattles.")
    await _open_inbox(page, base, account)

    await page.get_by_label("Search").fill(word)
    result = page.locator("#thread-list .result-row")
    await result.first.wait_for()
    await page.wait_for_url(f"{base}/console/inbox?q={word}")
    assert await result.count() == 1
    assert await result.get_attribute("href") == f"/console/threads/{target}?message={found['id']}"
    assert await result.locator("mark").inner_text() == word
    assert "Katherine Johnson" in await result.inner_text()
    assert await page.locator("#inbox-head .pane-title").inner_text() == "Search results"
    await screenshot(page, "inbox-search-1280x800")
    # Found by the person too: a name finds the newest message of each of their threads.
    await page.get_by_label("Search").fill("Hopper")
    await page.wait_for_url(f"{base}/console/inbox?q=Hopper")
    await page.locator(f'.result-row[data-thread-id="{threads["Grace Hopper"]["id"]}"]').wait_for()
    # Clearing the search shows the conversations again.
    await page.get_by_label("Back to the conversations").click()
    await page.wait_for_url(f"{base}/console/inbox")
    await page.wait_for_function("() => document.querySelectorAll('#thread-list .thread-row').length === 5")
    assert await page.get_by_label("Search").input_value() == ""
    assert page_errors(page) == [], page_errors(page)


async def test_hostile_content_renders_as_text_in_the_rows_and_results_and_fires_no_dialog(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant, v1: httpx.AsyncClient
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    person = await create_end_user(v1, display_name=f"{HOSTILE_IMG} Mallory")
    img_thread = await create_thread(v1, end_user_id=person["id"])
    script_thread = await create_thread(v1)
    await post_message(v1, img_thread["id"], f"{HOSTILE_IMG} look at this")
    await post_message(v1, script_thread["id"], f"{HOSTILE_SCRIPT} hello")
    tag = (await v1.post("/v1/tags", json={"name": "<b>bold</b>"})).json()
    await v1.patch(f"/v1/threads/{script_thread['id']}", json={"tags": [tag["id"]]})
    await _open_inbox(page, base, account)

    img_row = page.locator(f'.thread-row[data-thread-id="{img_thread["id"]}"]')
    script_row = page.locator(f'.thread-row[data-thread-id="{script_thread["id"]}"]')
    assert await img_row.locator(".row-excerpt").inner_text() == f"{HOSTILE_IMG} look at this"
    assert await img_row.locator(".row-name").inner_text() == f"{HOSTILE_IMG} Mallory"
    assert await script_row.locator(".row-excerpt").inner_text() == f"{HOSTILE_SCRIPT} hello"
    assert await script_row.locator(".tag").inner_text() == "<b>bold</b>"
    assert await page.locator("#thread-list img, #thread-list script, #thread-list b").count() == 0
    # The same content arriving live, and found by search.
    assert await _order(page) == [script_thread["id"], img_thread["id"]]
    await post_message(v1, img_thread["id"], f"again {HOSTILE_IMG}{HOSTILE_SCRIPT}")
    await page.wait_for_function(
        "id => document.querySelector('#thread-list .thread-row')?.dataset.threadId === id",
        arg=img_thread["id"],
        timeout=2000,
    )
    assert await img_row.locator(".row-excerpt").inner_text() == f"again {HOSTILE_IMG}{HOSTILE_SCRIPT}"
    await page.get_by_label("Search").fill("onerror alert")
    await page.locator("#thread-list .result-row").first.wait_for()
    await page.wait_for_url(f"{base}/console/inbox?q=onerror+alert")
    # Both of Mallory's messages (the one her name also finds is not listed twice).
    assert await page.locator("#thread-list .result-row").count() == 2
    assert await page.locator("#thread-list img, #thread-list script").count() == 0
    assert HOSTILE_IMG in await page.locator("#thread-list").inner_text()
    await page.wait_for_timeout(300)  # a dialog would have opened by now
    assert dialogs == []
    assert page_errors(page) == [], page_errors(page)


async def test_the_inbox_and_the_agents_page_on_a_phone_and_a_laptop(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant, v1: httpx.AsyncClient
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")
    await _a_busy_inbox(v1, account)
    flow_agent = await create_agent(
        v1,
        name="Opening hours (scripted)",
        description="Answers the usual questions at once, without a model.",
        version={
            "mode": "FLOW",
            "provider": "flow",
            "flow": {
                "start": "hours",
                "nodes": {
                    "hours": {"type": "send", "text": "We're open 9:00 to 18:00, Monday to Saturday.", "next": "done"},
                    "done": {"type": "end"},
                },
            },
        },
    )
    await create_thread(v1, agent_id=flow_agent["id"])
    await page.set_viewport_size(PHONE)
    await _open_inbox(page, base, account)
    assert await page.locator("#thread-list .thread-row").count() == 6
    await screenshot(page, "inbox-list-390x844")
    await page.get_by_role("button", name="Menu").click()
    await page.locator("#inbox-views").get_by_role("link", name="Needs a human").click()
    await page.wait_for_url(f"{base}/console/inbox?view=needs_human")
    assert await page.locator("#sidebar").is_visible() is False  # choosing a view closed the menu
    assert await page.locator("#thread-list .thread-row").count() == 2
    await screenshot(page, "inbox-needs-human-390x844")

    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto(f"{base}/console/agents")
    card = page.locator(".agent-card", has_text="Acme Bikes support")
    assert "6 threads" not in await card.inner_text()
    assert await card.locator(".agent-threads").inner_text() == "5 threads"
    assert await card.locator(".chip-mode").inner_text() == "PROMPT"
    await screenshot(page, "agents-1280x800")
    version_id = flow_agent["current_version"]["id"]
    await page.goto(f"{base}/console/agents#version-{version_id}")
    target = page.locator(f"#version-{version_id}")
    assert "is-target" in (await target.get_attribute("class") or "")
    assert '"type": "send"' in await target.locator("pre").inner_text()
    assert page_errors(page) == [], page_errors(page)


async def test_a_live_refresh_keeps_the_pages_loaded_the_scroll_and_the_open_row(
    console_server: str, page: Any, sessionmaker: Maker, tenant: Tenant, v1: httpx.AsyncClient
) -> None:
    base = console_server
    account = await make_operator(sessionmaker, tenant)
    agent = await create_agent(v1, name="Shop")
    threads = [await create_thread(v1, agent_id=agent["id"]) for _ in range(62)]
    newest_first = [t["id"] for t in reversed(threads)]
    await _open_inbox(page, base, account)
    assert await _order(page) == newest_first[:50]
    # Scrolling to the end loads the next page by itself.
    await page.locator("#inbox-more").scroll_into_view_if_needed()
    await page.wait_for_function("() => document.querySelectorAll('#thread-list .thread-row').length === 62")
    assert await _order(page) == newest_first
    assert await page.locator("#inbox-more").count() == 0
    # The operator opens a thread far down the list, then a message moves another thread to the top.
    opened = newest_first[40]
    await page.locator(f'.thread-row[data-thread-id="{opened}"]').click()
    await page.wait_for_url(f"{base}/console/threads/{opened}")
    scrolled = await page.locator("#thread-list").evaluate("el => el.scrollTop")
    assert scrolled > 1000
    moved = newest_first[55]
    await post_message(v1, moved, "I'm back")
    await page.wait_for_function(
        "id => document.querySelector('#thread-list .thread-row')?.dataset.threadId === id", arg=moved, timeout=2000
    )
    # Every row still there (not just the first page), the list where it was, the open thread still marked.
    assert await _order(page) == [moved, *[t for t in newest_first if t != moved]]
    assert abs(await page.locator("#thread-list").evaluate("el => el.scrollTop") - scrolled) < 150
    active = page.locator("#thread-list .thread-row.is-active")
    assert await active.count() == 1 and await active.get_attribute("data-thread-id") == opened
    assert page_errors(page) == [], page_errors(page)
