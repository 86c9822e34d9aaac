"""A pager walking ``after`` while several clients write to the same thread never misses or repeats."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import create_thread

WRITERS = 8
PER_WRITER = 40


async def test_forward_pager_sees_every_message_once_while_writers_insert(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    url = f"/v1/threads/{thread['id']}/messages"
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(PER_WRITER):
            r = await api.post(url, json={"content": f"w{w}-{i}"})
            assert r.status_code == 201, r.text

    seen: list[str] = []

    async def pager() -> None:
        last: str | None = None
        while True:
            finished = done.is_set()  # read before the request: a page after this sees every commit
            params = {"limit": 7, **({"after": last} if last else {})}
            r = await api.get(url, params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            seen.extend(m["id"] for m in page["data"])
            if page["data"]:
                last = page["last_id"]
            elif finished:
                return
            await asyncio.sleep(0)

    pager_task = asyncio.create_task(pager())
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    done.set()
    await pager_task

    everything: list[str] = []
    after: str | None = None
    while True:
        page = (await api.get(url, params={"limit": 100, **({"after": after} if after else {})})).json()
        everything.extend(m["id"] for m in page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert len(everything) == WRITERS * PER_WRITER
    assert len(set(seen)) == len(seen), "the pager saw a message twice"
    assert seen == everything, "the pager missed messages or saw them out of order"
    thread_now = (await api.get(f"/v1/threads/{thread['id']}")).json()
    assert thread_now["message_count"] == WRITERS * PER_WRITER
    # Each writer's own messages keep the order it wrote them in.
    contents = [m["content"] for m in (await api.get(url, params={"limit": 100})).json()["data"]]
    for w in range(WRITERS):
        mine = [int(c.split("-")[1]) for c in contents if c.startswith(f"w{w}-")]
        assert mine == sorted(mine)
