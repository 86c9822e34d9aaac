"""GET /v1/search/messages: full-text search over message content and end users' names and addresses."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.conftest import Tenant, add_key
from tests.factories import create_end_user, create_thread, post_message
from threadline.models.enums import Scope
from threadline.search import repository as search_repository

URL = "/v1/search/messages"


async def _search(api: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    r = await api.get(URL, params={"q": q, "limit": 100, **params})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _found(api: httpx.AsyncClient, q: str, **params: Any) -> list[str]:
    return [r["id"] for r in (await _search(api, q, **params))["data"]]


async def test_every_word_must_be_in_the_content_whole_and_in_any_case(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    brakes = await post_message(api, thread["id"], "My BRAKES squeak when it rains. Can you fix brakes?")
    refund = await post_message(api, thread["id"], "I would like a refund for the brake pads, order #4521.")
    other = await create_thread(api)
    saddle = await post_message(api, other["id"], "The saddle is fine; the brakes squeak.", role="assistant")
    assert await _found(api, "brakes") == [saddle["id"], brakes["id"]]  # newest first
    assert await _found(api, "brakes", order="asc") == [brakes["id"], saddle["id"]]
    assert await _found(api, "Squeak   brakes") == [saddle["id"], brakes["id"]]
    assert await _found(api, "brakes refund") == []  # every word, in one message
    assert await _found(api, "brake") == [refund["id"]]  # whole words: no stemming, no prefixes
    assert await _found(api, "4521") == [refund["id"]]
    assert await _found(api, '"refund" (order) *4521* NEAR') == []  # NEAR is a word like any other
    assert await _found(api, '"refund" (order) *4521*') == [refund["id"]]  # punctuation only separates words
    result = (await _search(api, "saddle"))["data"][0]
    assert result["object"] == "search_result" and result["match"] == "content"
    assert result["id"] == saddle["id"] and result["thread_id"] == other["id"]
    message = result["message"]
    assert message["object"] == "message" and message["thread_id"] == other["id"] and message["role"] == "assistant"
    # The message as /v1 renders it in its thread.
    listed = (await api.get(f"/v1/threads/{other['id']}/messages")).json()["data"][0]
    assert message == listed


async def test_an_end_users_name_or_address_finds_the_newest_message_of_their_threads(
    api: httpx.AsyncClient,
) -> None:
    person = await create_end_user(api, display_name="Grace Hopper", channel="sms", address="+41791234567")
    first = await create_thread(api, end_user_id=person["id"])
    second = await create_thread(api, end_user_id=person["id"])
    await create_thread(api, end_user_id=person["id"])  # no message: nothing to show
    await post_message(api, first["id"], "old")
    newest_first = await post_message(api, first["id"], "hello from grace")
    newest_second = await post_message(api, second["id"], "another thing")
    page = await _search(api, "grace")
    assert [(r["id"], r["match"]) for r in page["data"]] == [
        (newest_second["id"], "end_user"),
        (newest_first["id"], "content"),  # its content matches too: content wins
    ]
    assert await _found(api, "hopper grace") == [newest_second["id"], newest_first["id"]]
    assert await _found(api, "41791234567") == [newest_second["id"], newest_first["id"]]
    assert await _found(api, "+41 791234567") == []  # the address is one word
    assert await _found(api, "grace thing") == []  # every word in the name, or every word in the content
    # A new name is found, the old one no longer.
    r = await api.patch(f"/v1/end_users/{person['id']}", json={"display_name": "Ada Lovelace"})
    assert r.status_code == 200, r.text
    assert await _found(api, "hopper") == []
    assert await _found(api, "lovelace") == [newest_second["id"], newest_first["id"]]
    # An end user being erased is found no more.
    assert (await api.delete(f"/v1/end_users/{person['id']}", params={"erase": "true"})).status_code == 202
    assert await _found(api, "lovelace") == []


async def test_results_page_with_message_cursors_both_ways(api: httpx.AsyncClient) -> None:
    person = await create_end_user(api, display_name="Walker")
    posted = []
    for i in range(4):
        thread = await create_thread(api, end_user_id=person["id"] if i % 2 else None)
        posted.append(await post_message(api, thread["id"], f"walker page {i}" if i % 2 == 0 else f"note {i}"))
        posted.append(await post_message(api, thread["id"], "walker again" if i % 2 == 0 else f"last {i}"))
    expected = [m["id"] for m in reversed(posted) if "walker" in m["content"] or m["content"].startswith("last")]
    assert await _found(api, "walker") == expected
    seen: list[str] = []
    before = None
    while True:
        page = await _search(api, "walker", limit=2, **({"before": before} if before else {}))
        seen.extend(r["id"] for r in page["data"])
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            break
        before = page["last_id"]
    assert seen == expected
    forward: list[str] = []
    after = None
    while True:
        page = await _search(api, "walker", limit=3, order="asc", **({"after": after} if after else {}))
        forward.extend(r["id"] for r in page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert forward == expected[::-1]


async def test_a_deleted_thread_takes_its_messages_out_of_the_index(api: httpx.AsyncClient) -> None:
    doomed = await create_thread(api)
    await post_message(api, doomed["id"], "zebracorn sighting")
    assert len(await _found(api, "zebracorn")) == 1
    assert (await api.delete(f"/v1/threads/{doomed['id']}")).status_code == 204
    # The next message may take the deleted one's row id (SQLite): it must not inherit its words.
    fresh = await create_thread(api)
    kept = await post_message(api, fresh["id"], "an ordinary line")
    assert await _found(api, "zebracorn") == []
    assert await _found(api, "ordinary") == [kept["id"]]


async def test_the_sqlite_index_stays_consistent(
    api: httpx.AsyncClient, engine: AsyncEngine, is_postgres: bool
) -> None:
    if is_postgres:
        pytest.skip("SQLite's FTS5 tables")
    person = await create_end_user(api, display_name="Index Check")
    thread = await create_thread(api, end_user_id=person["id"])
    for i in range(5):
        await post_message(api, thread["id"], f"consistency {i}")
    await api.patch(f"/v1/end_users/{person['id']}", json={"display_name": "Renamed"})
    await api.delete(f"/v1/threads/{thread['id']}")
    async with engine.connect() as conn:
        for table in ("messages_fts", "end_users_fts"):
            # FTS5 raises if the index disagrees with the table it indexes.
            await conn.execute(text(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)"))


BAD_QUERIES = [
    "",
    " ",
    "\t\n",
    '"',
    "''",
    "*",
    "()",
    "(",
    ")",
    "-",
    "^",
    "+",
    ":",
    "!!!",
    "_",
    "%",
    "…",
    "🙂",
    "\\",
    "%_%",
]
ODD_QUERIES = [
    '"unbalanced',
    "NEAR(brakes squeak, 2)",
    "brakes*",
    "(brakes",
    "brakes)",
    "brakes OR squeak",
    "brakes AND NOT squeak",
    "-brakes",
    "^brakes",
    "content:brakes",
    "{content}: brakes",
    "brakes NEAR squeak",
    "a'b",
    "x\x00y",
    "über straße",
    "北京",
    "a" * 200,
]


async def test_bad_queries_are_422s_and_odd_ones_are_just_words(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    hit = await post_message(api, thread["id"], "My brakes squeak (loudly).")
    for q in BAD_QUERIES:
        r = await api.get(URL, params={"q": q})
        assert r.status_code == 422, (q, r.text)
        error = r.json()["error"]
        assert error["param"] == "q" and error["type"] == "invalid_request_error"
    r = await api.get(URL, params={"q": "a" * 201})
    assert r.status_code == 422 and r.json()["error"]["param"] == "q"
    r = await api.get(URL, params={"q": " ".join(f"w{i}" for i in range(17))})
    assert r.status_code == 422 and r.json()["error"]["param"] == "q"
    assert (await api.get(URL)).status_code == 422
    for q in ODD_QUERIES:
        r = await api.get(URL, params={"q": q})
        assert r.status_code == 200, (q, r.text)
    for q in ('"brakes', "brakes*", "(brakes", "-brakes", "{brakes}:", '(squeak) "BRAKES', "loudly)."):
        assert [r["id"] for r in (await api.get(URL, params={"q": q})).json()["data"]] == [hit["id"]], q


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=60) | st.text(alphabet="\"*()^-+:{}NEARORANDNOT \\'", max_size=30))
async def test_fuzzed_queries_are_answered_or_422_never_500(api: httpx.AsyncClient, q: str) -> None:
    r = await api.get(URL, params={"q": q})
    assert r.status_code in (200, 422), (q, r.status_code, r.text)
    if r.status_code == 422:
        assert r.json()["error"]["param"] == "q"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.text(max_size=70) | st.uuids().map(str))
async def test_fuzzed_cursors_are_400_or_422_never_500(api: httpx.AsyncClient, cursor: str) -> None:
    for param in ("after", "before"):
        r = await api.get(URL, params={"q": "hello", param: cursor})
        assert r.status_code in (400, 422), (cursor, r.status_code, r.text)
        assert r.json()["error"]["param"] == param


async def test_another_workspaces_messages_are_never_found_nor_its_cursors_taken(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    word = f"w{uuid.uuid4().hex[:10]}"
    api.headers.update(other_tenant.headers)
    try:
        person = await create_end_user(api, display_name=word)
        theirs = await post_message(api, (await create_thread(api, end_user_id=person["id"]))["id"], word)
        assert await _found(api, word) == [theirs["id"]]
    finally:
        api.headers.update(tenant.headers)
    mine = await post_message(api, (await create_thread(api))["id"], f"{word} here")
    assert await _found(api, word) == [mine["id"]]
    for param in ("after", "before"):
        r = await api.get(URL, params={"q": word, param: theirs["id"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == param


async def test_a_key_without_the_read_scope_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    none = await add_key(sessionmaker, tenant, ())
    read = await add_key(sessionmaker, tenant, (Scope.READ,))
    r = await client.get(URL, params={"q": "x"}, headers={"Authorization": f"Bearer {none}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert (await client.get(URL, params={"q": "x"}, headers={"Authorization": f"Bearer {read}"})).status_code == 200
    assert (await client.get(URL, params={"q": "x"})).status_code == 401


@pytest.mark.parametrize("window", [1, 2, 3, 7, 10_000])
async def test_pages_are_the_same_whatever_the_window(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """PostgreSQL reads the newest messages past the cursor first, then the index's matches beyond them
    (search.repository): where that window ends must never show in the results."""
    monkeypatch.setattr(search_repository, "WINDOW", window)
    thread = await create_thread(api)
    posted = [await post_message(api, thread["id"], "lamp" if i % 3 else f"other {i}") for i in range(14)]
    lamps = [m["id"] for m in posted if m["content"] == "lamp"]
    for limit in (1, 2, 4, 100):
        walked: list[str] = []
        before = None
        while True:
            page = await _search(api, "lamp", limit=limit, **({"before": before} if before else {}))
            walked.extend(r["id"] for r in page["data"])
            if not page["has_more"]:
                break
            before = page["last_id"]
        assert walked == lamps[::-1], (window, limit)
        forward: list[str] = []
        after = None
        while True:
            page = await _search(api, "lamp", limit=limit, order="asc", **({"after": after} if after else {}))
            forward.extend(r["id"] for r in page["data"])
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert forward == lamps, (window, limit)
    # Both cursors: what lies between, from any message (a match or not).
    page = await _search(api, "lamp", after=posted[2]["id"], before=posted[11]["id"])
    between = [m["id"] for m in posted[3:11] if m["content"] == "lamp"]
    assert [r["id"] for r in page["data"]] == between[::-1]
    assert (await _search(api, "nothingness"))["data"] == []
