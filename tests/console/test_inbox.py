"""The inbox over HTTP (httpx against the ASGI app, signed in through the form): threads by last activity, each
row's details, the views and their counts, the filters, "load more" pages that stay exact while messages arrive,
the answers htmx swaps in, search results, bad input, and tenancy."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.console.conftest import OperatorAccount, browser_client, make_operator, sign_in
from tests.console.inbox_pages import HTMX_LIST, HTMX_MORE, counts, inbox, more_url, parse, row_ids, rows_by_id, walk
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.integrations.helpers import create_integration, sms_body, whatsapp_body

Maker = async_sessionmaker[AsyncSession]


async def _signed_in(console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant) -> OperatorAccount:
    account = await make_operator(sessionmaker, tenant, first_name="Ada", last_name="Lovelace")
    await sign_in(console_http, account)
    return account


async def _tag(api: httpx.AsyncClient, name: str, color: str = "blue") -> str:
    r = await api.post("/v1/tags", json={"name": name, "color": color})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _user(api: httpx.AsyncClient, email: str) -> str:
    r = await api.post("/v1/users", json={"email": email, "first_name": "Bob", "last_name": "Builder"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _patch(api: httpx.AsyncClient, thread_id: str, **body: Any) -> None:
    r = await api.patch(f"/v1/threads/{thread_id}", json=body)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------------------------ signed out


async def test_signed_out_the_inbox_sends_to_sign_in_and_its_pieces_are_401s(console_http: httpx.AsyncClient) -> None:
    r = await console_http.get("/console/inbox", params={"view": "mine", "q": "x"})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/sign-in?next=/console/inbox%3Fview%3Dmine%26q%3Dx"
    r = await console_http.get("/console/inbox", headers=HTMX_LIST)
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/console/sign-in"
    r = await console_http.get("/console/inbox", headers=HTMX_MORE, params={"before": "MTIz"})
    assert r.status_code == 401
    r = await console_http.get("/console/agents")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in?next=/console/agents")
    # The live stream: a 401, never a stream nor a redirect (an EventSource cannot follow one to a form).
    r = await console_http.get("/console/events/inbox", headers={"Accept": "text/event-stream"})
    assert r.status_code == 401 and not r.headers["content-type"].startswith("text/event-stream")
    console_http.cookies.set("threadline_console", "not-a-session", path="/console")
    r = await console_http.get("/console/events/inbox")
    assert r.status_code == 401


# ------------------------------------------------------------------------------------------------ the list


async def test_threads_are_listed_by_last_activity_each_row_with_its_end_user_message_and_state(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    account = await _signed_in(console_http, sessionmaker, tenant)
    agent = await create_agent(api, name="Acme Bikes support")
    sms = await create_integration(api, sms_body())
    grace = await create_end_user(api, display_name="Grace Hopper", channel="sms", address="+14155550123")
    on_sms = await create_thread(api, agent_id=agent["id"], end_user_id=grace["id"], integration_id=sms["id"])
    plain = await create_thread(api, agent_id=agent["id"])
    quiet = await create_thread(api, agent_id=agent["id"])  # no message: sorts by its creation, before them
    vip = await _tag(api, "VIP", "purple")
    await _patch(api, on_sms["id"], active=False, tags=[vip], assigned_to=[account.user_public_id])
    await post_message(api, on_sms["id"], "My order #4521 arrived with a bent wheel.")
    await post_message(api, on_sms["id"], "Can   someone\ncall me back?")
    await post_message(api, plain["id"], "Do you repair brakes?")
    await post_message(api, plain["id"], "Yes, every day but Sunday.", role="assistant")

    doc = await inbox(console_http)
    assert row_ids(doc) == [plain["id"], on_sms["id"], quiet["id"]]
    rows = rows_by_id(doc)
    row = rows[on_sms["id"]]
    assert row.attrs["href"] == f"/console/threads/{on_sms['id']}"
    assert row.attrs["hx-get"] == row.attrs["href"] and row.attrs["hx-target"] == "#thread-detail"
    assert row.find_all(cls="row-name")[0].text == "Grace Hopper"
    assert row.find_all(cls="row-address")[0].text == "+14155550123"
    assert row.find_all(cls="row-channel")[0].text == "SMS"
    assert row.find_all(cls="ch-sms"), "the channel's icon"
    assert "Acme Bikes support" in row.find_all(cls="row-agent")[0].text
    assert row.find_all(cls="row-excerpt")[0].text == "Can someone call me back?"  # one line
    assert row.find_all(cls="unread")[0].text == "2 unread"
    assert "is-unread" in row.classes
    assert row.find_all(cls="chip-needs")[0].text == "Needs a human"
    assert [t.text for t in row.find_all(cls="tag")] == ["VIP"] and row.find_all(cls="tag-purple")
    assert [a.attrs["title"] for a in row.find_all(cls="assignee")] == ["Assigned to Ada Lovelace"]
    assert row.find_all(tag="time")[0].attrs["datetime"].endswith("Z")
    # The agent's reply, marked as the agent's; the end user's message was read by nobody yet.
    answered = rows[plain["id"]]
    assert answered.find_all(cls="row-excerpt")[0].text == "Agent: Yes, every day but Sunday."
    assert answered.find_all(cls="unread")[0].text == "1 unread"
    assert answered.find_all(cls="chip-agent")[0].text == "Agent"
    assert rows[quiet["id"]].find_all(cls="row-excerpt")[0].text == "No messages yet"
    assert not rows[quiet["id"]].find_all(cls="unread")
    # Read: the badge goes; an operator's answer makes the handoff "human".
    r = await api.post(f"/v1/threads/{on_sms['id']}/read", json={})
    assert r.status_code in (200, 204), r.text
    await post_message(api, on_sms["id"], "Calling you now.", role="assistant", user_id=account.user_public_id)
    row = rows_by_id(await inbox(console_http))[on_sms["id"]]
    assert not row.find_all(cls="unread") and "is-unread" not in row.classes
    assert row.find_all(cls="chip-human")[0].text == "Human"
    assert row.find_all(cls="row-excerpt")[0].text == "Operator: Calling you now."


async def test_views_list_their_threads_and_the_sidebar_counts_each(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant, app: Any
) -> None:
    account = await _signed_in(console_http, sessionmaker, tenant)
    me, bob = account.user_public_id, await _user(api, "bob@example.com")
    waiting = await create_thread(api, active=False, assigned_to=[me])
    mine = await create_thread(api, assigned_to=[me, bob])
    bobs = await create_thread(api, assigned_to=[bob])
    answered = await create_thread(api, active=False)
    nobodys = await create_thread(api)
    await post_message(api, waiting["id"], "anyone there?")
    await post_message(api, answered["id"], "hello")
    await post_message(api, answered["id"], "Hi, Bob here", role="assistant", user_id=bob)
    await post_message(api, nobodys["id"], "hi")

    expected = {
        "needs_human": [waiting["id"]],
        "mine": [waiting["id"], mine["id"]],
        "unassigned": [nobodys["id"], answered["id"]],
        "all": [nobodys["id"], answered["id"], waiting["id"], bobs["id"], mine["id"]],
    }
    for view, ids in expected.items():
        doc = await inbox(console_http, view=view)
        assert row_ids(doc) == ids, view
        assert counts(doc) == {"needs_human": "1", "mine": "2", "unassigned": "2", "all": "5"}, view
        active = doc.by_id("inbox-views").find_all(cls="is-active")
        assert [a.attrs["data-view"] for a in active] == [view]
        assert doc.by_id("filter-view").attrs["value"] == view
        assert doc.by_id("inbox-head-count").text == str(len(ids))
    assert "is-alert" in (await inbox(console_http)).by_id("count-needs_human").classes
    # Bob's own inbox: "mine" is whoever is signed in.
    bob_account = await make_operator(sessionmaker, tenant, email="bob-op@example.com")
    r = await api.patch(f"/v1/threads/{bobs['id']}", json={"assigned_to": [bob_account.user_public_id]})
    assert r.status_code == 200
    async with browser_client(app) as bob_client:
        await sign_in(bob_client, bob_account)
        assert row_ids(await inbox(bob_client, view="mine")) == [bobs["id"]]
    # Empty views say what they are for.
    await _patch(api, waiting["id"], active=True)
    doc = await inbox(console_http, view="needs_human")
    assert row_ids(doc) == [] and "Nobody is waiting for a human" in doc.text
    assert counts(doc)["needs_human"] == ""


async def test_filters_narrow_the_list_and_the_counts_and_every_link_keeps_them(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    account = await _signed_in(console_http, sessionmaker, tenant)
    shop, other = await create_agent(api, name="Shop"), await create_agent(api, name="Other")
    sms, whatsapp = await create_integration(api, sms_body()), await create_integration(api, whatsapp_body())
    vip = await _tag(api, "vip")
    a = await create_thread(api, agent_id=shop["id"], integration_id=sms["id"], tags=[vip])
    b = await create_thread(api, agent_id=shop["id"], integration_id=whatsapp["id"], blocked=True)
    c = await create_thread(api, agent_id=other["id"], assigned_to=[account.user_public_id], active=False)
    d = await create_thread(api, agent_id=other["id"], integration_id=sms["id"], blocked=True, tags=[vip])
    for t in (a, b, c, d):
        await post_message(api, t["id"], "hello")

    async def ids(**params: str) -> list[str]:
        return row_ids(await inbox(console_http, **params))

    assert await ids(agent=shop["id"]) == [b["id"], a["id"]]
    assert await ids(channel="sms") == [d["id"], a["id"]]
    assert await ids(channel="whatsapp") == [b["id"]]
    assert await ids(channel="api") == [c["id"]]
    assert await ids(tag=vip) == [d["id"], a["id"]]
    assert await ids(blocked="yes") == [d["id"], b["id"]]
    assert await ids(blocked="no") == [c["id"], a["id"]]
    assert await ids(channel="sms", blocked="yes", agent=other["id"]) == [d["id"]]
    assert await ids(view="mine", agent=other["id"]) == [c["id"]]
    assert await ids(view="unassigned", tag=vip, blocked="no") == [a["id"]]
    # Empty fields (as a form sends them) mean "any".
    assert await ids(agent="", channel="", tag="", blocked="", view="") == [d["id"], c["id"], b["id"], a["id"]]

    doc = await inbox(console_http, channel="sms", tag=vip)
    assert counts(doc) == {"needs_human": "", "mine": "", "unassigned": "2", "all": "2"}
    # The filter bar shows what is chosen; the views and the head's "Clear filters" keep the filters / the view.
    assert doc.find_all(tag="option", value="sms")[0].attrs.get("selected") == ""
    assert doc.find_all(tag="option", value=vip)[0].attrs.get("selected") == ""
    assert {o.text for o in doc.find_all(tag="option") if o.attrs.get("value") in (shop["id"], other["id"])} == {
        "Shop",
        "Other",
    }
    links = {a.attrs["data-view"]: a.attrs["href"] for a in doc.by_id("inbox-views").find_all(tag="a")}
    assert links["mine"] == f"/console/inbox?view=mine&channel=sms&tag={vip}"
    assert links["all"] == f"/console/inbox?channel=sms&tag={vip}"
    doc = await inbox(console_http, view="needs_human", channel="sms")
    assert doc.find_all(cls="clear-link")[0].attrs["href"] == "/console/inbox?view=needs_human"
    assert "No conversations match these filters" in doc.text
    # An agent or tag that names nothing here matches nothing (it never reveals anything elsewhere).
    assert await ids(agent="01890a5d-ac96-774b-bcce-b302099a8057") == []
    assert await ids(tag="not-an-id") == []


async def test_load_more_walks_every_thread_once_in_order_while_messages_arrive(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    await _signed_in(console_http, sessionmaker, tenant)
    agent = await create_agent(api)
    threads = [await create_thread(api, agent_id=agent["id"]) for _ in range(23)]
    for t in threads:
        await post_message(api, t["id"], "hi")
    newest_first = [t["id"] for t in reversed(threads)]
    first = f"/console/inbox?agent={agent['id']}&limit=5"
    assert await walk(console_http, first) == newest_first

    # While the operator scrolls: a thread already seen and one not seen yet get a message. Each moves above the
    # place reached: neither shows again below it; every other thread shows once, in its order.
    seen_one, unseen_one = newest_first[1], newest_first[17]

    async def messages_arrive(page_number: int) -> None:
        if page_number == 2:
            await post_message(api, seen_one, "me again")
            await post_message(api, unseen_one, "me too")

    walked = await walk(console_http, first, between=messages_arrive)
    assert walked == [t for t in newest_first if t != unseen_one]
    assert row_ids(await inbox(console_http, agent=agent["id"], limit="5"))[:2] == [unseen_one, seen_one]
    # The button asks for the next rows after the last one shown, with the same filters and page size.
    doc = await inbox(console_http, agent=agent["id"], limit="5")
    url = more_url(doc)
    assert url is not None and url.startswith(f"/console/inbox?agent={agent['id']}&before=") and "limit=5" in url
    r = await console_http.get(url, headers=HTMX_MORE)
    assert "<html" not in r.text and row_ids(r.text) == row_ids(await inbox(console_http, agent=agent["id"]))[5:10]


async def test_htmx_gets_the_list_and_what_changed_with_it_and_the_address_to_show(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    account = await _signed_in(console_http, sessionmaker, tenant)
    mine = await create_thread(api, assigned_to=[account.user_public_id])
    await post_message(api, mine["id"], "hello")
    others = [await create_thread(api) for _ in range(3)]

    # A view or a filter (what the sidebar and the filter bar ask): the list, the views, the head, the hidden view
    # field and the search box out of band; the canonical address (no empty fields) to push.
    r = await console_http.get(
        "/console/inbox",
        params={"view": "mine", "agent": "", "channel": "api", "tag": "", "blocked": ""},
        headers={**HTMX_LIST, "HX-Trigger": "inbox-filters"},
    )
    assert r.status_code == 200 and "<html" not in r.text
    assert r.headers["hx-push-url"] == "/console/inbox?view=mine&channel=api"
    doc = parse(r.text)
    assert row_ids(doc) == [mine["id"]]
    oob = {n.attrs["id"] for n in doc.iter() if n.attrs.get("hx-swap-oob") == "true"}
    assert oob == {"inbox-views", "inbox-head", "filter-view", "inbox-search"}
    assert doc.by_id("filter-view").attrs["value"] == "mine"
    # Typing a search: the address is replaced (not one history entry per key), the search box left alone.
    r = await console_http.get(
        "/console/inbox", params={"q": "hello"}, headers={**HTMX_LIST, "HX-Trigger": "inbox-search"}
    )
    assert r.headers["hx-replace-url"] == "/console/inbox?q=hello" and "hx-push-url" not in r.headers
    assert not parse(r.text).has_id("inbox-search")
    # The live refresh: the first rows again, as many as asked, and the counts; nothing pushed.
    r = await console_http.get("/console/inbox", params={"live": "true", "limit": "2"}, headers=HTMX_LIST)
    assert "hx-push-url" not in r.headers and "hx-replace-url" not in r.headers
    doc = parse(r.text)
    assert row_ids(doc) == [others[2]["id"], others[1]["id"]] and more_url(doc) is not None
    oob = {n.attrs["id"] for n in doc.iter() if n.attrs.get("hx-swap-oob") == "true"}
    assert oob == {"count-needs_human", "count-mine", "count-unassigned", "count-all", "inbox-head"}
    assert counts(doc) == {"needs_human": "", "mine": "1", "unassigned": "3", "all": "4"}
    # htmx restoring history, or a browser: the whole page.
    for headers in ({"HX-Request": "true", "HX-History-Restore-Request": "true", "HX-Target": "thread-list"}, {}):
        r = await console_http.get("/console/inbox", headers=headers)
        assert r.text.lstrip().startswith("<!doctype html>") and row_ids(r.text)[0] == others[2]["id"]


async def test_bad_queries_are_4xx_pages_that_name_the_field(
    console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    await _signed_in(console_http, sessionmaker, tenant)
    for params, status, field in (
        ({"view": "inbox"}, 422, "view"),
        ({"channel": "fax"}, 422, "channel"),
        ({"blocked": "maybe"}, 422, "blocked"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "201"}, 422, "limit"),
        ({"limit": "many"}, 422, "limit"),
        ({"q": "x" * 201}, 422, "q"),
        ({"before": "not-a-cursor"}, 400, "before"),
        ({"before": "MTIz"}, 400, "before"),
    ):
        r = await console_http.get("/console/inbox", params=params)
        assert r.status_code == status, (params, r.status_code)
        assert r.headers["content-type"].startswith("text/html")
        assert field in parse(r.text).text, (params, r.text[:500])
    # A search without a word: the page says so.
    r = await console_http.get("/console/inbox", params={"q": "!!! ???"})
    assert r.status_code == 422 and "Nothing to search for" in r.text
    r = await console_http.get("/console/inbox", params={"q": "!!!"}, headers=HTMX_LIST)
    assert r.status_code == 200 and "Nothing to search for" in r.text


# ------------------------------------------------------------------------------------------------ search


async def test_search_results_show_the_match_in_its_message_escaped_and_link_into_the_thread(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    await _signed_in(console_http, sessionmaker, tenant)
    mallory = await create_end_user(api, display_name="<b>Mallory</b> Brakeman", channel="sms", address="+15550001")
    thread = await create_thread(api, end_user_id=mallory["id"])
    hostile = await post_message(api, thread["id"], "<img src=x onerror=alert(1)> my BRAKES squeal <script>x</script>")
    other = await create_thread(api)
    reply = await post_message(api, other["id"], "The brakes are fixed.", role="assistant")
    long_text = "word " * 60 + "brakes at the end " + "word " * 60
    long = await post_message(api, other["id"], long_text)

    r = await console_http.get("/console/inbox", params={"q": "brakes"})
    assert r.status_code == 200
    assert "<img" not in r.text and "<script>x" not in r.text and "<b>Mallory" not in r.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.text
    doc = parse(r.text)
    results = doc.find_all(cls="result-row")
    assert [n.attrs["data-message-id"] for n in results] == [long["id"], reply["id"], hostile["id"]]
    by_message = {n.attrs["data-message-id"]: n for n in results}
    found = by_message[hostile["id"]]
    assert found.attrs["href"] == f"/console/threads/{thread['id']}?message={hostile['id']}"
    assert found.attrs["hx-get"] == found.attrs["href"] and found.attrs["hx-target"] == "#thread-detail"
    assert found.find_all(cls="row-name")[0].text == "<b>Mallory</b> Brakeman"
    assert found.find_all(cls="row-address")[0].text == "+15550001"
    assert [m.text for m in found.find_all(tag="mark")] == ["BRAKES"]
    assert (
        found.find_all(cls="result-excerpt")[0].text
        == "<img src=x onerror=alert(1)> my BRAKES squeal <script>x</script>"
    )
    assert by_message[reply["id"]].find_all(cls="result-excerpt")[0].text == "Agent: The brakes are fixed."
    # A long message is cut around the match.
    excerpt = by_message[long["id"]].find_all(cls="result-excerpt")[0].text
    assert excerpt.startswith("…") and excerpt.endswith("…") and "brakes at the end" in excerpt
    assert len(excerpt) < 200
    assert doc.find_all(cls="pane-title")[0].text == "Search results"
    # The person's name finds the newest message of their threads, said so.
    doc = await inbox(console_http, q="Brakeman")
    results = doc.find_all(cls="result-row")
    assert [n.attrs["data-message-id"] for n in results] == [hostile["id"]]
    assert "Matches the person" in results[0].text
    # Nothing found: said so, with the words escaped.
    r = await console_http.get("/console/inbox", params={"q": "<i>zebra</i>"})
    assert "No messages match “&lt;i&gt;zebra&lt;/i&gt;”" in r.text


async def test_search_results_come_in_pages_of_25_with_load_more(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    await _signed_in(console_http, sessionmaker, tenant)
    thread = await create_thread(api)
    posted = [(await post_message(api, thread["id"], f"sprocket number {i}"))["id"] for i in range(30)]
    r = await console_http.get("/console/inbox", params={"q": "sprocket"})
    doc = parse(r.text)
    first = [n.attrs["data-message-id"] for n in doc.find_all(cls="result-row")]
    assert first == posted[::-1][:25]
    url = more_url(doc)
    assert url is not None
    r = await console_http.get(url, headers=HTMX_MORE)
    rest = [n.attrs["data-message-id"] for n in parse(r.text).find_all(cls="result-row")]
    assert rest == posted[::-1][25:] and more_url(r.text) is None


# ------------------------------------------------------------------------------------------------ tenancy


async def test_another_workspaces_threads_are_never_listed_counted_or_found(
    api: httpx.AsyncClient,
    console_http: httpx.AsyncClient,
    sessionmaker: Maker,
    tenant: Tenant,
    other_tenant: Tenant,
    app: Any,
) -> None:
    await _signed_in(console_http, sessionmaker, tenant)
    ours = await create_thread(api, active=False)
    await post_message(api, ours["id"], "our wheel squeaks")
    api.headers.update(other_tenant.headers)
    their_agent = await create_agent(api, name="Their agent")
    their_tag = await _tag(api, "theirs")
    theirs = [await create_thread(api, agent_id=their_agent["id"], tags=[their_tag], active=False) for _ in range(3)]
    for t in theirs:
        await post_message(api, t["id"], "their wheel squeaks")
    their_operator = await make_operator(sessionmaker, other_tenant)

    for view in ("all", "needs_human", "unassigned", "mine"):
        doc = await inbox(console_http, view=view)
        assert not set(row_ids(doc)) & {t["id"] for t in theirs}, view
    doc = await inbox(console_http)
    assert row_ids(doc) == [ours["id"]]
    assert counts(doc) == {"needs_human": "1", "mine": "", "unassigned": "1", "all": "1"}
    assert "Their agent" not in doc.text and "theirs" not in doc.text  # not offered by the filter bar either
    assert row_ids(await inbox(console_http, agent=their_agent["id"])) == []
    assert row_ids(await inbox(console_http, tag=their_tag)) == []
    found = (await inbox(console_http, q="wheel squeaks")).find_all(cls="result-row")
    assert [n.attrs["data-thread-id"] for n in found] == [ours["id"]]
    # Their operator sees theirs, not ours.
    async with browser_client(app) as their_client:
        await sign_in(their_client, their_operator)
        doc = await inbox(their_client)
        assert sorted(row_ids(doc)) == sorted(t["id"] for t in theirs)
        assert counts(doc)["all"] == "3"
        found = (await inbox(their_client, q="wheel squeaks")).find_all(cls="result-row")
        assert {n.attrs["data-thread-id"] for n in found} == {t["id"] for t in theirs}


async def test_every_inbox_answer_has_no_inline_code_and_the_security_headers(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    from tests.console.test_security import _assert_security_headers

    await _signed_in(console_http, sessionmaker, tenant)
    person = await create_end_user(api, display_name='x" onmouseover="alert(1)" style="color:red')
    thread = await create_thread(api, end_user_id=person["id"], tags=[await _tag(api, "<style>x</style>")])
    await post_message(api, thread["id"], "<a href='javascript:alert(1)' onclick=alert(1) style=x>hi</a>")
    for url, headers in (
        ("/console/inbox", {}),
        ("/console/inbox?view=needs_human", HTMX_LIST),
        ("/console/inbox?live=true", HTMX_LIST),
        ("/console/inbox?q=hi", {}),
        ("/console/inbox?q=onmouseover", HTMX_LIST),
        ("/console/agents", {}),
    ):
        r = await console_http.get(url, headers=headers)
        assert r.status_code == 200, url
        _assert_security_headers(r)
        # The content is hostile on purpose: read as a browser would, no element has inline code or style.
        for node in parse(r.text).iter():
            assert node.tag != "style" and not (node.tag == "script" and "src" not in node.attrs), (url, node)
            for name, value in node.attrs.items():
                assert name != "style" and not name.startswith(("on", "hx-on")), (url, node.tag, name)
                assert not value.lower().startswith("javascript:"), (url, node.tag, name)
                assert not (name == "hx-vals" and value.startswith("js:")), (url, node.tag)
    assert r.headers["cache-control"] == "no-store"
