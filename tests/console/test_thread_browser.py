"""The thread view in a real browser (Debian's Chromium) against a real server process that runs the workers too
(``THREADLINE_RUN_WORKERS=true``), its PROMPT agents answering through an OpenAI-compatible stand-in that streams,
its SMS going through a Twilio stand-in: live messages, the agent's reply streaming in, taking over and handing
back, delivery ticks from signed status callbacks, tags and assignment, the scroll back, hostile content."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.channels import test_twilio_inbound as sms
from tests.conftest import Tenant, make_tenant
from tests.console.browser import (
    DESKTOP,
    PHONE,
    console_server_process,
    page_errors,
    screenshot,
    sign_in_in_browser,
    watch,
)
from tests.console.conftest import OperatorAccount, make_operator
from tests.factories import create_agent, create_end_user, create_thread
from tests.fakes.openai_server import OpenAIStandIn, ReceivedRequest, Reply
from tests.fakes.twilio_server import TwilioStandIn
from tests.livesrv import free_port, server_log
from threadline.config import Settings

Maker = async_sessionmaker[AsyncSession]
WITHIN_S = 20.0  # a bound on waits for work done by the server's workers (fails with its log)
HOSTILE = '<img src=x onerror=alert(1)> <script>alert("boom")</script>'


def echo(request: ReceivedRequest) -> Reply:
    """The model's default answer: it repeats the end user's last words, in small pieces, slowly enough that the
    browser sees the reply grow."""
    last = next((m.get("content") for m in reversed(request.messages) if m.get("role") == "user"), "")
    return Reply(
        text=f"You said: {last}. Is there anything else I can help you with today?", chunks=12, chunk_delay_s=0.12
    )


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-test") as server:
        server.default = echo
        yield server


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def live(database_url: str, engine: Any, settings: Settings, llm: OpenAIStandIn) -> Iterator[str]:
    """A server process with its workers, for this module's tests only (its workers claim every job)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "THREADLINE_OPENAI_BASE_URL": llm.base_url,
        "THREADLINE_OPENAI_API_KEY": "sk-test",
        "THREADLINE_RUN_WORKERS": "true",
        "THREADLINE_RUN_DEBOUNCE_S": "0",
        "THREADLINE_RUN_DEBOUNCE_MESSAGING_S": "0",
        "THREADLINE_WORKER_POLL_INTERVAL_S": "0.1",
        "THREADLINE_JOB_BACKOFF_BASE_S": "0.1",
        "THREADLINE_JOB_BACKOFF_CAP_S": "0.5",
        # Twilio reaches the server here (StatusCallback, and the URL its signatures are checked against).
        "THREADLINE_PUBLIC_BASE_URL": base,
        "THREADLINE_CHANNEL_ALLOW_PRIVATE_URLS": "true",
    }
    with console_server_process(database_url, settings, port=port, **env) as url:  # type: ignore[arg-type]
        assert url == base
        yield url


@pytest.fixture
async def tenant_api(live: str, sessionmaker: Maker) -> AsyncIterator[tuple[Tenant, httpx.AsyncClient]]:
    tenant = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=live, headers=tenant.headers, timeout=15) as api:
        yield tenant, api


async def prompt_agent(api: httpx.AsyncClient, name: str = "Concierge", **more: Any) -> dict[str, Any]:
    version = {
        **more,
        "mode": "PROMPT",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "system_prompt": "You are the shop's assistant.",
        "settings": {"debounce_s": 0},
    }
    return await create_agent(api, name=name, version=version)


async def say(api: httpx.AsyncClient, thread_id: str, content: str, **fields: Any) -> dict[str, Any]:
    r = await api.post(f"/v1/threads/{thread_id}/messages", json={"content": content, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def open_thread(page: Any, base: str, account: OperatorAccount, thread_id: str, **query: str) -> None:
    """Sign in, open the thread's page, and wait until its live stream is connected."""
    await sign_in_in_browser(page, base, account.email, account.password)
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    await page.goto(f"{base}/console/threads/{thread_id}{suffix}")
    try:
        await page.locator('.thread[data-live="open"]').wait_for()
    except Exception:
        await screenshot(page, "debug")
        print("ERRORS", page_errors(page), server_log(base)[-3000:])
        print(
            await page.evaluate(
                "() => document.querySelector('.thread') && document.querySelector('.thread').outerHTML.slice(0, 600)"
            )
        )
        raise


async def until(check: Any, what: str, base: str, seconds: float = WITHIN_S) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{server_log(base)[-3000:]}")
        await asyncio.sleep(0.05)


def texts(page: Any) -> Any:
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('#msgs .msg .msg-text, #msgs .msg .note-text'))"
        ".map(n => n.textContent)"
    )


# ------------------------------------------------------------------------------------------------ live


async def test_a_message_posted_through_the_api_appears_in_the_open_thread_within_2_s(
    live: str, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    quiet = await create_agent(api, name="Quiet")  # no version: no run
    thread = await create_thread(api, agent_id=quiet["id"])
    await say(api, thread["id"], "first words")
    await open_thread(page, live, account, thread["id"])
    assert await texts(page) == ["first words"]
    started = time.monotonic()
    await say(api, thread["id"], "Is anyone there?")
    await page.locator("#msgs .msg-end_user", has_text="Is anyone there?").wait_for(timeout=2000)
    assert time.monotonic() - started < 2.0
    assert await texts(page) == ["first words", "Is anyone there?"]
    assert page_errors(page) == [], page_errors(page)


async def test_an_agents_streamed_reply_appears_token_by_token_then_as_the_stored_message(
    live: str, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    agent = await prompt_agent(api)
    thread = await create_thread(api, agent_id=agent["id"])
    await open_thread(page, live, account, thread["id"])
    # Everything the streaming bubble shows, as it shows it; and whether the typing indicator came on.
    await page.evaluate(
        """() => {
          window.seen = []; window.typing = false;
          const text = document.getElementById('stream-text');
          const bubble = document.querySelector('.msg-streaming');
          new MutationObserver(() => window.seen.push([text.textContent, getComputedStyle(bubble).display]))
            .observe(text, {childList: true, characterData: true, subtree: true});
          const typing = document.getElementById('typing');
          new MutationObserver(() => { if (typing.querySelector('[data-running]')) window.typing = true; })
            .observe(typing, {childList: true, subtree: true});
        }"""
    )
    await say(api, thread["id"], "Where is my parcel?")
    final = "You said: Where is my parcel?. Is there anything else I can help you with today?"
    await page.locator("#msgs .msg-agent .msg-text", has_text=final).wait_for(timeout=WITHIN_S * 1000)
    seen = await page.evaluate("() => window.seen")
    shown = [text for text, display in seen if text and display != "none"]
    growing = list(dict.fromkeys(shown))
    assert len(growing) >= 4, seen  # token by token, not all at once
    assert all(final.startswith(text) for text in growing), growing
    assert [len(t) for t in growing] == sorted(len(t) for t in growing)
    assert len(growing[0]) < len(final) / 2
    assert await page.evaluate("() => window.typing")
    # Replaced by the stored message: the bubble is empty and hidden, the indicator off, the reply there once.
    assert await page.locator("#stream-text").text_content() == ""
    assert not await page.locator(".msg-streaming").is_visible()
    await page.locator("#typing [data-running]").wait_for(state="detached")
    assert await page.locator("#msgs .msg-agent").count() == 1
    assert page_errors(page) == [], page_errors(page)


async def test_take_over_answer_as_the_operator_then_hand_back_to_the_agent(
    live: str, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient], llm: OpenAIStandIn
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")
    agent = await prompt_agent(api)
    thread = await create_thread(api, agent_id=agent["id"])
    await open_thread(page, live, account, thread["id"])
    assert await page.get_by_role("button", name="Take over and send").is_visible()

    await page.get_by_role("button", name="Take over", exact=True).click()
    await page.locator('#thread-state[data-handoff="needs_human"]').wait_for()
    await page.get_by_role("button", name="Send", exact=True).wait_for()
    assert (await api.get(f"/v1/threads/{thread['id']}")).json()["active"] is False
    reply = page.get_by_label("Reply")
    await reply.fill("Hello, Ada here: how can I help?")
    await reply.press("Enter")
    mine = page.locator("#msgs .msg-operator", has_text="Ada here")
    await mine.wait_for()
    assert "Ada Lovelace" in await mine.locator(".msg-author").inner_text()
    assert await reply.input_value() == ""  # the composer emptied once sent
    await page.locator('#thread-state[data-handoff="human"]').wait_for()  # answered by a human

    asked = len(llm.completion_requests)
    await say(api, thread["id"], "Are you a real person?")
    await page.locator("#msgs .msg-end_user", has_text="real person").wait_for(timeout=2000)
    await page.locator('#thread-state[data-handoff="needs_human"]').wait_for()
    await asyncio.sleep(2.5)  # time enough for an agent that should not answer
    assert await page.locator("#msgs .msg-agent").count() == 0
    assert len(llm.completion_requests) == asked
    r = await api.get(f"/v1/threads/{thread['id']}/runs")
    assert r.status_code == 200 and r.json()["data"] == [], r.text

    await page.get_by_role("button", name="Hand back to agent").click()
    await page.locator('#thread-state[data-handoff="agent"]').wait_for()
    await page.get_by_role("button", name="Take over and send").wait_for()
    await say(api, thread["id"], "Thanks, the agent can carry on")
    await page.locator("#msgs .msg-agent", has_text="You said: Thanks, the agent can carry on").wait_for(
        timeout=WITHIN_S * 1000
    )
    messages = (await api.get(f"/v1/threads/{thread['id']}/messages")).json()["data"]
    assert [(m["role"], m["sent_by"]) for m in messages] == [
        ("assistant", "operator"),
        ("user", "end_user"),
        ("user", "end_user"),
        ("assistant", "agent"),
    ]
    assert page_errors(page) == [], page_errors(page)


# ------------------------------------------------------------------------------------------------ actions


async def test_tags_and_assignment_from_the_ui_reach_every_open_console(
    live: str, chromium: Any, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    ada = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")
    grace = await make_operator(sessionmaker, tenant, first_name="Grace", last_name="Hopper")
    thread = await create_thread(api, agent_id=(await create_agent(api, name="Quiet"))["id"])
    await open_thread(page, live, ada, thread["id"])
    other = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    try:
        theirs = await other.new_page()
        theirs.set_default_timeout(10_000)
        watch(theirs)
        await open_thread(theirs, live, grace, thread["id"])

        await page.locator("#assign-menu summary").click()
        await page.get_by_role("button", name="Assign to me").click()
        for p in (page, theirs):
            await p.locator(".thread-labels .th-assignee", has_text="Ada Lovelace").wait_for()

        await page.locator("#tag-menu summary").click()
        await page.get_by_placeholder("Name (new or existing)").fill("VIP customer")
        await page.get_by_role("button", name="Add", exact=True).click()
        for p in (page, theirs):
            await p.locator(".thread-labels .tag", has_text="VIP customer").wait_for()
        shown = (await api.get(f"/v1/threads/{thread['id']}")).json()
        assert [t["name"] for t in shown["tags"]] == ["VIP customer"]
        assert [u["id"] for u in shown["assigned_to"]] == [ada.user_public_id]

        # Grace hands it to herself alone; Ada's console follows.
        await theirs.locator("#assign-menu summary").click()
        await theirs.get_by_label("Ada Lovelace").uncheck()
        await theirs.get_by_label("Grace Hopper").check()
        await theirs.get_by_role("button", name="Save").click()
        for p in (page, theirs):
            await p.locator(".thread-labels .th-assignee", has_text="Grace Hopper").wait_for()
            await p.locator(".thread-labels .th-assignee", has_text="Ada Lovelace").wait_for(state="detached")

        await theirs.get_by_role("button", name="Remove tag VIP customer").click()
        for p in (page, theirs):
            await p.locator(".thread-labels .tag", has_text="VIP customer").wait_for(state="detached")
        shown = (await api.get(f"/v1/threads/{thread['id']}")).json()
        assert shown["tags"] == [] and [u["id"] for u in shown["assigned_to"]] == [grace.user_public_id]
        assert page_errors(page) == [] and page_errors(theirs) == [], (page_errors(page), page_errors(theirs))
    finally:
        await other.close()


async def test_scroll_back_loads_older_pages_with_no_gap_and_no_repeat(
    live: str, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    thread = await create_thread(api, agent_id=(await create_agent(api, name="Quiet"))["id"])
    sent = [f"message number {i}" for i in range(75)]
    ids = [(await say(api, thread["id"], content))["id"] for content in sent]
    await open_thread(page, live, account, thread["id"])
    assert await texts(page) == sent[-30:]  # the newest page first, the newest at the bottom, in view
    assert await page.locator("#msgs .msg-text", has_text="message number 74").is_visible()
    pages = 1
    while not await page.locator(".transcript-start").count():
        before = await page.locator("#msgs .msg").count()
        await page.evaluate("() => { document.getElementById('transcript').scrollTop = 0; }")
        await page.wait_for_function(f"() => document.querySelectorAll('#msgs .msg').length > {before}")
        pages += 1
        assert pages <= 5
    shown = await texts(page)
    assert shown == sent, shown  # no gap, no repeat, in order
    assert pages == 3

    # A search result's link: the page around that message, the message marked and in view.
    await page.goto(f"{live}/console/threads/{thread['id']}?message={ids[20]}")
    target = page.locator(f"#m-{ids[20]}")
    await target.wait_for()
    assert "is-target" in (await target.get_attribute("class") or "")
    in_view = await page.evaluate(
        """(id) => {
          const box = document.getElementById(id).getBoundingClientRect();
          const view = document.getElementById('transcript').getBoundingClientRect();
          return box.top >= view.top && box.bottom <= view.bottom;
        }""",
        f"m-{ids[20]}",
    )
    assert in_view
    assert (await texts(page))[0] == "message number 5" and (await texts(page))[-1] == "message number 74"
    assert page_errors(page) == [], page_errors(page)


async def test_a_thread_opened_from_the_inbox_list_goes_live_and_the_next_one_replaces_it(
    live: str, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    quiet = await create_agent(api, name="Quiet")
    first = await create_thread(
        api, agent_id=quiet["id"], end_user_id=(await create_end_user(api, display_name="First"))["id"]
    )
    second = await create_thread(
        api, agent_id=quiet["id"], end_user_id=(await create_end_user(api, display_name="Second"))["id"]
    )
    await say(api, first["id"], "from the first")
    await say(api, second["id"], "from the second")
    await sign_in_in_browser(page, live, account.email, account.password)
    await page.locator(f"#row-{first['id']}").click()
    await page.locator(f'.thread[data-thread="{first["id"]}"][data-live="open"]').wait_for()
    await page.wait_for_url(f"{live}/console/threads/{first['id']}")
    assert await texts(page) == ["from the first"]
    await page.locator(f"#row-{second['id']}").click()
    await page.locator(f'.thread[data-thread="{second["id"]}"][data-live="open"]').wait_for()
    assert await page.locator(".thread").count() == 1
    await say(api, first["id"], "the first again")
    await say(api, second["id"], "the second again")
    await page.locator("#msgs .msg-text", has_text="the second again").wait_for(timeout=2000)
    assert await texts(page) == ["from the second", "the second again"]
    assert page_errors(page) == [], page_errors(page)


async def test_hostile_content_renders_as_text_and_fires_no_dialog(
    live: str, page: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    end_user = await create_end_user(api, display_name="<b onmouseover=alert(3)>Eve</b>", metadata={"<i>": HOSTILE})
    thread = await create_thread(
        api, agent_id=(await create_agent(api, name="Quiet"))["id"], end_user_id=end_user["id"]
    )
    await say(api, thread["id"], HOSTILE)
    dialogs: list[str] = []

    async def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await open_thread(page, live, account, thread["id"])
    await say(api, thread["id"], HOSTILE + " (live)")
    await say(api, thread["id"], HOSTILE, role="system")
    await page.locator("#msgs .msg-text", has_text="(live)").wait_for(timeout=2000)
    # The system note too, before typing: a message the view appends from its own POST lands at the end even if
    # an earlier one is still on its way through the stream (the order is right again on the next load).
    await page.locator("#msgs .msg-system").first.wait_for(timeout=2000)
    reply = page.get_by_label("Reply")
    await reply.fill(HOSTILE + " (typed)")
    await reply.press("Enter")
    await page.locator("#msgs .msg-operator .msg-text", has_text="(typed)").wait_for()
    await page.get_by_role("button", name="About the end user").click()
    await asyncio.sleep(0.5)
    assert await texts(page) == [HOSTILE, HOSTILE + " (live)", HOSTILE, HOSTILE + " (typed)"]
    assert await page.locator(".thread-name").inner_text() == "<b onmouseover=alert(3)>Eve</b>"
    assert (
        await page.evaluate(
            "() => document.querySelectorAll('#thread img, #thread script, #thread b, #thread i').length"
        )
        == 0
    )
    assert HOSTILE in await page.locator("#thread-side").inner_text()
    assert dialogs == []
    assert page_errors(page) == [], page_errors(page)


async def test_signing_out_elsewhere_ends_the_live_view(
    live: str, chromium: Any, sessionmaker: Maker, tenant_api: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    thread = await create_thread(api, agent_id=(await create_agent(api, name="Quiet"))["id"])
    context = await chromium.new_context(viewport=DESKTOP, reduced_motion="reduce")
    try:
        first = await context.new_page()
        first.set_default_timeout(10_000)
        watch(first)
        await open_thread(first, live, account, thread["id"])
        second = await context.new_page()  # another tab of the same browser: the same session
        await second.goto(f"{live}/console/inbox")
        await second.get_by_role("button", name="Sign out").click()
        await second.wait_for_url(f"{live}/console/sign-in")
        await first.wait_for_url(f"{live}/console/sign-in**", timeout=10_000)
    finally:
        await context.close()


# ------------------------------------------------------------------------------------------------ SMS


async def sms_thread(
    api: httpx.AsyncClient, twilio: TwilioStandIn, agent: dict[str, Any], **fields: Any
) -> tuple[sms.Line, dict[str, Any]]:
    """An SMS line on the Twilio stand-in and a thread on it with an end user at ``sms.CUSTOMER``."""
    line = await sms.sms_line(
        api, agent=agent, account_sid=twilio.account_sid, auth_token=twilio.auth_token, api_base_url=twilio.base_url
    )
    profile = {k: fields.pop(k) for k in ("display_name", "metadata", "info") if k in fields}
    end_user = await create_end_user(api, channel="sms", address=sms.CUSTOMER, **profile)
    thread = await create_thread(
        api, agent_id=agent["id"], end_user_id=end_user["id"], integration_id=line.id, **fields
    )
    return line, thread


async def message_status(api: httpx.AsyncClient, thread_id: str, message_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/threads/{thread_id}/messages/{message_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def callback(live: str, twilio: TwilioStandIn, line: sms.Line, sid: str, status: str) -> None:
    """What Twilio POSTs to the message's StatusCallback when it moves to ``status``, signed."""
    url, params = twilio.status_callback(sid, status)
    assert url is not None and url.startswith(live + "/")
    async with httpx.AsyncClient(timeout=10) as provider:
        r = await provider.post(url, data=params, headers=sms.sign(line.auth_token, url, params))
    assert r.status_code == 200, r.text


async def sent_through_twilio(live: str, api: httpx.AsyncClient, thread_id: str, message_id: str) -> str:
    """Wait until the worker has sent the message to Twilio; its Twilio sid."""
    found: dict[str, Any] = {}

    async def sent() -> bool:
        found.update(await message_status(api, thread_id, message_id))
        return found.get("status") == "SENT" and bool(found.get("external_id"))

    await until(sent, f"message {message_id} to be sent through Twilio ({found})", live)
    return str(found["external_id"])


async def test_an_sms_threads_status_ticks_move_from_sent_to_delivered_to_read_as_signed_callbacks_arrive(
    live: str,
    page: Any,
    sessionmaker: Maker,
    tenant_api: tuple[Tenant, httpx.AsyncClient],
    twilio: TwilioStandIn,
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant)
    quiet = await create_agent(api, name="Quiet")  # no version: the operator answers
    line, thread = await sms_thread(api, twilio, quiet, display_name="Sam")
    await say(api, thread["id"], "Hello? Is my table booked?")
    await open_thread(page, live, account, thread["id"])
    # Every status the operator's message shows, in order.
    await page.evaluate(
        """() => {
          window.statuses = [];
          const note = () => {
            const s = document.querySelector('#msgs .msg-operator .status');
            const value = s && s.getAttribute('data-status');
            if (value && window.statuses[window.statuses.length - 1] !== value) window.statuses.push(value);
          };
          new MutationObserver(note).observe(document.getElementById('msgs'),
            {childList: true, subtree: true, attributes: true, attributeFilter: ['data-status']});
        }"""
    )
    reply = page.get_by_label("Reply")
    await reply.fill("Yes, table for two at 8pm. See you!")
    await page.get_by_role("button", name="Take over and send").click()
    sent = page.locator("#msgs .msg-operator", has_text="table for two")
    await sent.wait_for()
    await sent.locator('.status[data-status="SENT"]').wait_for(timeout=WITHIN_S * 1000)
    assert "Sent" in await sent.locator(".status").inner_text()
    (request,) = [r for r in twilio.requests if r.form.get("Body") == "Yes, table for two at 8pm. See you!"]
    assert request.form["To"] == sms.CUSTOMER
    message_id = (await sent.get_attribute("data-message")) or ""
    sid = (await message_status(api, thread["id"], message_id))["external_id"]
    await callback(live, twilio, line, sid, "delivered")
    await sent.locator('.status[data-status="DELIVERED"]').wait_for(timeout=2000)
    await callback(live, twilio, line, sid, "read")
    await sent.locator('.status[data-status="READ"]').wait_for(timeout=2000)
    assert "Read" in await sent.locator(".status").inner_text()
    statuses = await page.evaluate("() => window.statuses")
    assert statuses[-3:] == ["SENT", "DELIVERED", "READ"], statuses
    assert set(statuses) <= {"QUEUED", "SENDING", "SENT", "DELIVERED", "READ"}, statuses
    assert page_errors(page) == [], page_errors(page)


# ------------------------------------------------------------------------------------------------ screenshots


async def test_the_thread_view_at_a_laptops_size_and_a_phones(
    live: str,
    page: Any,
    sessionmaker: Maker,
    tenant_api: tuple[Tenant, httpx.AsyncClient],
    twilio: TwilioStandIn,
    llm: OpenAIStandIn,
) -> None:
    tenant, api = tenant_api
    account = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")
    agent = await prompt_agent(api, "Shop assistant", tools=[{"type": "add_tag"}])
    r = await api.post("/v1/tags", json={"name": "Refund", "color": "green"})
    assert r.status_code == 201, r.text
    refund = r.json()["id"]
    line, thread = await sms_thread(
        api,
        twilio,
        agent,
        display_name="Maya Patel",
        metadata={"plan": "Pro", "order": "A-1042", "locale": "en-US"},
        info="Prefers SMS. Second order this year.",
    )
    for other in ("Tom Becker", "Lena Fischer", "Ravi Kumar"):
        someone = await create_end_user(api, display_name=other)
        quiet = await create_agent(api, name="Billing")
        other_thread = await create_thread(api, agent_id=quiet["id"], end_user_id=someone["id"])
        await say(api, other_thread["id"], f"Hello, this is {other.split()[0]}. A quick question about my invoice.")
    # The agent looks the order up (a tool call), then answers; its reply goes out by SMS and is read.
    llm.script(
        Reply(
            reasoning="The customer asks where an order is: tag the thread, then answer.",
            tool_calls=[("add_tag", '{"name": "Delivery"}')],
            usage=(412, 38),
        ),
        Reply(
            text="I checked order A-1042: it left our warehouse on Monday and is with UPS. Tracking shows a delay at "
            "the sorting centre; the new estimate is Thursday.",
            chunks=6,
            usage=(530, 61),
        ),
    )
    await say(api, thread["id"], "Hi! My order A-1042 hasn't arrived yet. Can you check?")
    answer = await agent_reply(live, api, thread["id"], 1)
    sid = await sent_through_twilio(live, api, thread["id"], answer["id"])
    for status in ("delivered", "read"):
        await callback(live, twilio, line, sid, status)
    # A person takes it over, and answers.
    r = await api.patch(
        f"/v1/threads/{thread['id']}",
        json={
            "active": False,
            "assigned_to": [account.user_public_id],
            "tags": [*(t["id"] for t in (await api.get(f"/v1/threads/{thread['id']}")).json()["tags"]), refund],
        },
    )
    assert r.status_code == 200, r.text
    await say(api, thread["id"], "It was supposed to arrive yesterday. I need it for the weekend 😕")
    await say(api, thread["id"], "Handed to a person: delivery complaint", role="system")
    reply = await say(
        api,
        thread["id"],
        "Hi Maya, Ada from the support team here. I've asked UPS to prioritise it: you'll have it by Friday noon, "
        "and I've refunded the shipping fee.",
        role="assistant",
        user_id=account.user_public_id,
    )
    sid = await sent_through_twilio(live, api, thread["id"], reply["id"])
    await callback(live, twilio, line, sid, "delivered")
    await say(api, thread["id"], "That's great, thank you!")

    await open_thread(page, live, account, thread["id"])
    await page.locator("#msgs .msg-end_user", has_text="thank you").wait_for()
    await page.locator(f'#st-{answer["id"]}[data-status="READ"]').wait_for()

    # Opening it marked the end user's messages read (the inbox's row shows none unread once drawn again).
    async def read() -> bool:
        shown = (await api.get(f"/v1/threads/{thread['id']}/messages")).json()["data"]
        return all(m["read"] for m in shown if m["role"] == "user")

    await until(read, "the end user's messages to be marked read", live)
    await page.reload()
    await page.locator('.thread[data-live="open"]').wait_for()
    assert not await page.locator(f"#row-{thread['id']} .unread").count()
    await screenshot(page, "thread-1280x800")
    # The agent's tool call and model calls, opened; the end user's panel, opened.
    await page.locator(".trace-summary").first.click()
    await page.locator(".trace-body").first.wait_for()
    await page.locator(".trace").first.scroll_into_view_if_needed()
    await screenshot(page, "thread-trace-1280x800")
    await page.get_by_role("button", name="About the end user").click()
    await page.locator("#thread-side").wait_for(state="visible")
    await screenshot(page, "thread-details-1280x800")
    assert page_errors(page) == [], page_errors(page)

    await page.set_viewport_size(PHONE)
    await page.reload()
    await page.locator('.thread[data-live="open"]').wait_for()
    assert await page.locator("#thread-detail").is_visible()
    assert not await page.locator("#thread-list").is_visible()  # one pane at a time on a phone
    await screenshot(page, "thread-390x844")
    await page.get_by_role("button", name="About the end user").click()
    await page.locator("#thread-side").wait_for(state="visible")
    await screenshot(page, "thread-details-390x844")
    await page.set_viewport_size(DESKTOP)


async def agent_reply(live: str, api: httpx.AsyncClient, thread_id: str, count: int) -> dict[str, Any]:
    """Wait until the thread holds ``count`` replies of the agent; the last of them."""
    replies: list[dict[str, Any]] = []

    async def arrived() -> bool:
        r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100, "role": "assistant"})
        replies[:] = [m for m in r.json()["data"] if m["sent_by"] == "agent"]
        return len(replies) >= count

    await until(arrived, f"{count} replies of the agent", live)
    return replies[count - 1]
