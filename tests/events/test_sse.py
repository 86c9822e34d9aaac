"""The live event streams, through a real server process (SQLite: the embedded mode; PostgreSQL: LISTEN)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.events.sse import Stream
from tests.factories import create_thread, post_message
from tests.livesrv import live_server


@pytest.fixture(scope="module")
def base(database_url: str, engine: Any) -> Iterator[str]:
    with live_server(database_url, THREADLINE_SSE_KEEPALIVE_S="0.5") as url:
        yield url


@pytest.fixture
async def live(base: str, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=10) as c:
        yield c


async def test_a_new_message_arrives_on_the_workspace_stream_with_its_seq_type_and_envelope(
    live: httpx.AsyncClient,
) -> None:
    thread = await create_thread(live)
    async with Stream(live, "/v1/events") as stream:
        assert stream.response is not None
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        message = await post_message(live, thread["id"], "hello there")
        (frame,) = await stream.wait_for(1)
    assert frame.event == "message.created"
    body = frame.json
    assert frame.id == str(body["seq"])
    assert body["object"] == "event" and body["type"] == "message.created"
    assert body["thread_id"] == thread["id"]
    assert body["data"]["id"] == message["id"] and body["data"]["content"] == "hello there"
    assert body["data"] == {k: v for k, v in message.items() if k not in ("run", "replies")}  # as /v1 shows it
    assert stream.frames[0].retry is not None  # the stream opens with its reconnection delay


async def test_resuming_with_last_event_id_gives_exactly_the_events_missed(live: httpx.AsyncClient) -> None:
    thread = await create_thread(live)
    async with Stream(live, "/v1/events", params={"after": 0}) as stream:
        (first,) = await stream.wait_for(1)
    assert first.event == "thread.created" and first.id == "1"  # a new workspace's log starts at 1
    last_seen = first.id
    sent = [await post_message(live, thread["id"], f"while away {i}") for i in range(5)]
    async with Stream(live, "/v1/events", headers={"Last-Event-ID": last_seen}) as stream:
        frames = await stream.wait_for(5)
        await post_message(live, thread["id"], "after reconnecting")
        frames = await stream.wait_for(6)
    seqs = [int(f.id) for f in frames if f.id]
    assert seqs == list(range(int(last_seen) + 1, int(last_seen) + 7))
    assert [f.json["data"]["id"] for f in frames[:5]] == [m["id"] for m in sent]
    assert frames[5].json["data"]["content"] == "after reconnecting"

    # ?after= resumes the same way; Last-Event-ID wins when both are given.
    async with Stream(live, "/v1/events", params={"after": 0}, headers={"Last-Event-ID": str(seqs[3])}) as stream:
        frames = await stream.wait_for(2)
    assert [int(f.id) for f in frames[:2]] == seqs[4:6]


async def test_a_thread_stream_carries_only_that_thread_and_types_filter(live: httpx.AsyncClient) -> None:
    mine = await create_thread(live)
    other = await create_thread(live)
    async with Stream(live, f"/v1/threads/{mine['id']}/events") as stream:
        await post_message(live, other["id"], "not for this stream")
        await post_message(live, mine["id"], "for this stream")
        r = await live.patch(f"/v1/threads/{mine['id']}", json={"active": False})
        assert r.status_code == 200
        frames = await stream.wait_for(3)
    assert [f.event for f in frames] == ["message.created", "thread.updated", "thread.handoff_started"]
    assert frames[2].json["data"]["to"] == "human" and frames[2].json["data"]["by"] == "api"
    assert frames[0].json["data"]["content"] == "for this stream"
    assert frames[1].json["changes"] == ["active"] and frames[1].json["data"]["active"] is False

    async with Stream(live, "/v1/events", params={"types": "thread.*", "after": frames[0].id}) as stream:
        only = await stream.wait_for(1)
    assert only[0].event == "thread.updated"


async def test_an_idle_stream_sends_keep_alive_comments(live: httpx.AsyncClient) -> None:
    async with Stream(live, "/v1/events") as stream:
        await asyncio.sleep(1.6)
    assert sum("keep-alive" in c for f in stream.frames for c in f.comments) >= 2


async def test_bad_cursors_types_threads_and_keys_are_refused_in_the_json_error_format(
    live: httpx.AsyncClient, base: str
) -> None:
    head = await live.get("/v1/events", params={"after": 10**12})
    assert head.status_code == 400 and head.json()["error"]["param"] == "after"
    bad = await live.get("/v1/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Last-Event-ID"
    # "²" (0xB2 on the wire) is a digit to str.isdigit() that int() cannot read: a 400, not a 500.
    superscript = await live.get("/v1/events", headers={"Last-Event-ID": b"\xb2"})
    assert superscript.status_code == 400 and superscript.json()["error"]["param"] == "Last-Event-ID"
    typ = await live.get("/v1/events", params={"types": "message.created,nonsense"})
    assert typ.status_code == 400 and "nonsense" in typ.json()["error"]["message"]
    neg = await live.get("/v1/events", params={"after": -1})
    assert neg.status_code == 422
    missing = await live.get("/v1/threads/00000000-0000-7000-8000-000000000000/events")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    async with httpx.AsyncClient(base_url=base) as anonymous:
        assert (await anonymous.get("/v1/events")).status_code == 401


async def test_another_workspaces_events_never_reach_a_stream(
    live: httpx.AsyncClient, base: str, other_tenant: Tenant
) -> None:
    async with httpx.AsyncClient(base_url=base, headers=other_tenant.headers, timeout=10) as theirs:
        their_thread = await create_thread(theirs)
        async with Stream(live, "/v1/events", params={"after": 0}) as stream:
            mine = await create_thread(live)
            await post_message(theirs, their_thread["id"], "private")
            await post_message(live, mine["id"], "mine")
            await asyncio.sleep(0.3)
            frames = await stream.wait_for(2)
    assert all(f.json["thread_id"] != their_thread["id"] for f in frames)
    assert "private" not in "".join(f.data for f in stream.frames)
