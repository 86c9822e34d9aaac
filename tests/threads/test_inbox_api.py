"""GET /v1/threads by last activity (order_by=last_message_at), the inbox views and filters, and their counts."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant, add_key
from tests.factories import create_agent, create_thread, post_message
from tests.integrations.helpers import create_integration, sms_body, whatsapp_body
from threadline.models.enums import Scope

URL = "/v1/threads"
COUNTS = "/v1/thread_counts"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BY_ACTIVITY = {"order_by": "last_message_at"}


async def _ids(api: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await api.get(URL, params={**BY_ACTIVITY, "limit": 100, **params})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["data"]]


async def _walk(api: httpx.AsyncClient, limit: int, **params: Any) -> list[str]:
    """Every page, newest first, following ``before=<last_cursor>``."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        r = await api.get(
            URL, params={**BY_ACTIVITY, "limit": limit, **params, **({"before": cursor} if cursor else {})}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        seen.extend(t["id"] for t in page["data"])
        if not page["has_more"]:
            return seen
        cursor = page["last_cursor"]


async def _user(api: httpx.AsyncClient, email: str = "op@example.com") -> str:
    r = await api.post("/v1/users", json={"email": email})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _patch(api: httpx.AsyncClient, thread_id: str, **body: Any) -> None:
    r = await api.patch(f"{URL}/{thread_id}", json=body)
    assert r.status_code == 200, r.text


async def test_threads_sort_by_last_activity_newest_first_and_a_new_thread_by_its_creation(
    api: httpx.AsyncClient,
) -> None:
    a, b, c = [await create_thread(api) for _ in range(3)]
    await post_message(api, b["id"])
    await post_message(api, a["id"])
    d = await create_thread(api)  # no message yet: sorts at its creation, after a's message
    await post_message(api, c["id"])
    assert (await _ids(api))[:4] == [c["id"], d["id"], a["id"], b["id"]]
    assert (await _ids(api, order="asc"))[-4:] == [b["id"], a["id"], d["id"], c["id"]]
    # The default order is unchanged: by creation, oldest first, with no cursors in the envelope.
    r = await api.get(URL, params={"limit": 100})
    page = r.json()
    assert [t["id"] for t in page["data"]][-4:] == [a["id"], b["id"], c["id"], d["id"]]
    assert page["first_cursor"] is None and page["last_cursor"] is None


async def test_cursors_page_both_ways_with_the_cursor_rule(api: httpx.AsyncClient) -> None:
    threads = [await create_thread(api) for _ in range(7)]
    for t in reversed(threads):  # threads[0] gets the newest message
        await post_message(api, t["id"])
    newest_first = [t["id"] for t in threads]
    first = (await api.get(URL, params={**BY_ACTIVITY, "limit": 3})).json()
    assert [t["id"] for t in first["data"]] == newest_first[:3] and first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == (newest_first[0], newest_first[2])
    assert await _walk(api, 3) == newest_first
    # after=X: the threads after X in the order (newer), nearest first; order only sorts the page.
    older = (await api.get(URL, params={**BY_ACTIVITY, "limit": 3, "before": first["last_cursor"]})).json()
    assert [t["id"] for t in older["data"]] == newest_first[3:6]
    r = await api.get(URL, params={**BY_ACTIVITY, "limit": 2, "after": older["last_cursor"]})
    assert [t["id"] for t in r.json()["data"]] == [newest_first[3], newest_first[4]]
    assert r.json()["has_more"] is True
    r = await api.get(URL, params={**BY_ACTIVITY, "limit": 2, "after": older["last_cursor"], "order": "asc"})
    assert [t["id"] for t in r.json()["data"]] == [newest_first[4], newest_first[3]]
    # before=X, oldest first: the last items before X, sorted the other way.
    r = await api.get(URL, params={**BY_ACTIVITY, "limit": 2, "before": first["last_cursor"], "order": "asc"})
    assert [t["id"] for t in r.json()["data"]] == [newest_first[4], newest_first[3]]
    # Both cursors: what lies between them.
    r = await api.get(
        URL, params={**BY_ACTIVITY, "limit": 100, "after": older["last_cursor"], "before": first["first_cursor"]}
    )
    assert [t["id"] for t in r.json()["data"]] == newest_first[1:5] and r.json()["has_more"] is False


async def test_a_thread_id_or_anything_but_a_cursor_is_a_400_naming_it(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    for bad in (thread["id"], "abc", "MTIz", "LTEuMA", "OTk5OTk5OTk5OTk5OTk5OTk5LjE", "MS4w", "x" * 64, "é"):
        for param in ("after", "before"):
            r = await api.get(URL, params={**BY_ACTIVITY, param: bad})
            assert r.status_code == 400, (bad, r.text)
            error = r.json()["error"]
            assert error["param"] == param and error["type"] == "invalid_request_error"
    r = await api.get(URL, params={**BY_ACTIVITY, "after": "x" * 65})
    assert r.status_code == 422 and r.json()["error"]["param"] == "after"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cursor=st.one_of(
        st.text(max_size=70),
        st.binary(max_size=40).map(_b64),
        st.text("0123456789.-", max_size=40).map(lambda t: _b64(t.encode())),
    )
)
async def test_fuzzed_cursors_are_4xx_never_500(api: httpx.AsyncClient, cursor: str) -> None:
    for param in ("after", "before"):
        r = await api.get(URL, params={**BY_ACTIVITY, param: cursor})
        assert r.status_code in (200, 400, 422), (cursor, r.status_code, r.text)
        if r.status_code != 200:
            assert r.json()["error"]["param"] == param


WRITERS = 4
ROUNDS = 5


async def test_a_pager_walking_by_activity_never_repeats_or_skips_a_thread_that_did_not_move(
    api: httpx.AsyncClient,
) -> None:
    """The pager proof of tests/messages/test_concurrent_paging.py, for the inbox order: several writers move
    threads to the top while a client walks the pages newest first with before=<last_cursor>."""
    threads = [await create_thread(api) for _ in range(32)]
    for t in threads:
        await post_message(api, t["id"])
    movers = [t["id"] for t in threads[::3]]  # these get messages while the pager walks
    writing = WRITERS

    async def writer(w: int) -> None:
        nonlocal writing
        for i in range(ROUNDS):
            for thread_id in movers[w::WRITERS]:
                await post_message(api, thread_id, f"w{w}-{i}")
                await asyncio.sleep(0)
        writing -= 1

    async def pager() -> list[list[str]]:
        walks: list[list[str]] = []
        while True:
            finished = writing == 0  # read before the walk: a walk after this sees every commit
            walks.append(await _walk(api, 4))
            if finished:
                return walks

    *_, walks = await asyncio.gather(*(writer(w) for w in range(WRITERS)), pager())
    steady = [t["id"] for t in threads if t["id"] not in movers]
    # Threads that did not move: every walk sees each of them once, in their order (newest first).
    for walk in walks:
        assert len(walk) == len(set(walk)), "a walk saw a thread twice"
        assert [t for t in walk if t in steady] == steady[::-1], "a walk missed a thread or saw it out of order"
    assert len(walks) >= 3, "the pager never walked while the writers wrote"
    # Once the writers are done, a walk sees every thread once, the movers first in the order they last moved.
    assert sorted(walks[-1]) == sorted(t["id"] for t in threads)
    assert walks[-1][len(movers) :] == steady[::-1]


async def test_needs_human_is_handed_to_a_human_and_not_answered_by_one_since(api: httpx.AsyncClient) -> None:
    operator = await _user(api)
    thread = await create_thread(api)
    other = await create_thread(api, active=False)  # handed over with no message at all: still waiting
    tid = thread["id"]

    async def needs() -> list[str]:
        return await _ids(api, view="needs_human")

    await post_message(api, tid, "I need help")
    assert tid not in await needs()  # the agent has it
    await _patch(api, tid, active=False)
    assert tid in await needs() and other["id"] in await needs()
    # A system note or a hidden message is not an answer, whoever wrote it.
    await post_message(api, tid, "handed over", role="system")
    await post_message(api, tid, "the agent's late reply", role="hidden")
    assert tid in await needs()
    await post_message(api, tid, "Hi, Ann here", role="assistant", user_id=operator)
    assert tid not in await needs()
    await post_message(api, tid, "a late hidden reply", role="hidden")
    assert tid not in await needs()
    await post_message(api, tid, "Thanks, one more thing")  # the end user writes again while a human has it
    assert tid in await needs()
    await _patch(api, tid, active=True)  # handed back
    assert tid not in await needs()


async def test_views_mine_and_unassigned_and_the_filters(api: httpx.AsyncClient) -> None:
    me, you = await _user(api, "me@example.com"), await _user(api, "you@example.com")
    agent = await create_agent(api)
    tag = (await api.post("/v1/tags", json={"name": "vip"})).json()
    sms = await create_integration(api, sms_body())
    whatsapp = await create_integration(api, whatsapp_body())
    mine = await create_thread(api, assigned_to=[me])
    ours = await create_thread(api, assigned_to=[me, you], tags=[tag["id"]])
    yours = await create_thread(api, assigned_to=[you], agent_id=agent["id"])
    nobody = await create_thread(api, blocked=True, integration_id=sms["id"])
    on_whatsapp = await create_thread(api, integration_id=whatsapp["id"], agent_id=agent["id"])
    everything = [mine, ours, yours, nobody, on_whatsapp]
    for t in everything:
        await post_message(api, t["id"])
    ids = {t["id"]: name for t, name in zip(everything, ["mine", "ours", "yours", "nobody", "wa"], strict=True)}

    async def names(**params: Any) -> list[str]:
        return [ids[i] for i in await _ids(api, **params) if i in ids]

    assert await names() == ["wa", "nobody", "yours", "ours", "mine"]
    assert await names(view="mine", assigned_user_id=me) == ["ours", "mine"]
    assert await names(view="mine", assigned_user_id=you) == ["yours", "ours"]
    assert await names(view="unassigned") == ["wa", "nobody"]
    assert await names(view="all") == await names()
    assert await names(agent_id=agent["id"]) == ["wa", "yours"]
    assert await names(channel="sms") == ["nobody"]
    assert await names(channel="whatsapp") == ["wa"]
    assert await names(channel="api") == ["yours", "ours", "mine"]
    assert await names(tag_id=tag["id"]) == ["ours"]
    assert await names(blocked=True) == ["nobody"]
    assert await names(blocked=False, view="unassigned") == ["wa"]
    # The same views and filters in the default order (by creation).
    r = await api.get(URL, params={"view": "unassigned", "channel": "whatsapp", "limit": 100})
    assert [t["id"] for t in r.json()["data"]] == [on_whatsapp["id"]]


async def test_view_mine_needs_a_user_and_bad_values_are_422s(api: httpx.AsyncClient) -> None:
    for params in ({"view": "mine"}, {**BY_ACTIVITY, "view": "mine"}):
        r = await api.get(URL, params=params)
        assert r.status_code == 422 and r.json()["error"]["param"] == "view", r.text
    for params in ({"view": "inbox"}, {"channel": "fax"}, {"order_by": "updated_at"}, {"order": "up"}):
        r = await api.get(URL, params=params)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["param"] == next(iter(params))
    # An unknown user matches nothing, as every id filter does.
    r = await api.get(URL, params={"view": "mine", "assigned_user_id": "nobody"})
    assert r.status_code == 200 and r.json()["data"] == []


async def test_counts_are_the_sizes_of_the_views(api: httpx.AsyncClient) -> None:
    me = await _user(api)
    tag = (await api.post("/v1/tags", json={"name": "t"})).json()
    handed = await create_thread(api, active=False, assigned_to=[me])
    answered = await create_thread(api, active=False, tags=[tag["id"]])
    await post_message(api, answered["id"], "hello", role="assistant", user_id=me)
    await create_thread(api, assigned_to=[me], tags=[tag["id"]])
    await create_thread(api, blocked=True)
    await post_message(api, handed["id"], "anyone?")

    async def counts(**params: Any) -> dict[str, Any]:
        r = await api.get(COUNTS, params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert await counts() == {"object": "thread_counts", "all": 4, "needs_human": 1, "unassigned": 2, "mine": None}
    assert (await counts(assigned_user_id=me))["mine"] == 2
    assert await counts(tag_id=tag["id"], assigned_user_id=me) == {
        "object": "thread_counts",
        "all": 2,
        "needs_human": 0,
        "unassigned": 1,
        "mine": 1,
    }
    assert (await counts(blocked=True))["all"] == 1
    # Each count is the length of the view's list, whatever else narrows both.
    for params in ({}, {"tag_id": tag["id"]}, {"blocked": False}, {"channel": "api"}):
        found = await counts(assigned_user_id=me, **params)
        for view in ("all", "needs_human", "unassigned", "mine"):
            mine = {"assigned_user_id": me} if view == "mine" else {}
            listed = await _ids(api, view=view, **mine, **params)
            assert found[view] == len(listed), (params, view)


async def test_another_workspaces_threads_never_show_and_counts_are_per_workspace(
    api: httpx.AsyncClient, other_tenant: Tenant, tenant: Tenant
) -> None:
    api.headers.update(other_tenant.headers)
    try:
        theirs = [await create_thread(api, active=False) for _ in range(3)]
        their_user = await _user(api, "them@example.com")
        await create_thread(api, assigned_to=[their_user])
        for t in theirs:
            await post_message(api, t["id"], "help")
        assert (await api.get(COUNTS)).json()["all"] == 4
        their_page = (await api.get(URL, params={**BY_ACTIVITY, "limit": 2})).json()
    finally:
        api.headers.update(tenant.headers)
    mine = await create_thread(api)
    await post_message(api, mine["id"])
    views: list[dict[str, Any]] = [
        {},
        {"view": "needs_human"},
        {"view": "unassigned"},
        {"view": "mine", "assigned_user_id": their_user},
    ]
    for params in views:
        assert set(await _ids(api, **params)) <= {mine["id"]}
    assert await _walk(api, 2) == [mine["id"]]
    counts = (await api.get(COUNTS, params={"assigned_user_id": their_user})).json()
    assert (counts["all"], counts["needs_human"], counts["unassigned"], counts["mine"]) == (1, 0, 1, 0)
    # Their cursor is only a place in the order: here it finds this workspace's threads, never theirs.
    for param in ("after", "before"):
        r = await api.get(URL, params={**BY_ACTIVITY, param: their_page["last_cursor"]})
        assert r.status_code == 200 and {t["id"] for t in r.json()["data"]} <= {mine["id"]}


async def test_a_key_without_the_read_scope_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    none = await add_key(sessionmaker, tenant, ())
    read = await add_key(sessionmaker, tenant, (Scope.READ,))
    for path, params in ((URL, BY_ACTIVITY), (COUNTS, {})):
        r = await client.get(path, params=params, headers={"Authorization": f"Bearer {none}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
        r = await client.get(path, params=params, headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 200
        assert (await client.get(path, params=params)).status_code == 401


@pytest.mark.parametrize("view", ["needs_human", "unassigned", "all"])
async def test_views_page_by_activity_like_the_whole_list(api: httpx.AsyncClient, view: str) -> None:
    threads = [await create_thread(api, active=i % 2 == 0) for i in range(9)]
    for t in threads:
        await post_message(api, t["id"])
    assert await _walk(api, 2, view=view) == await _ids(api, view=view)
