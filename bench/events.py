"""Event stream benchmark: commit-to-SSE delay across processes, and events per second through SSE.

    .venv/bin/python bench/events.py --db postgres   # two API processes: writer B, subscribers on A
    .venv/bin/python bench/events.py --db sqlite     # the embedded single process
    .venv/bin/python bench/events.py --db postgres --quick

Steps: a private database (PostgreSQL ``threadline_bench_<random>``, dropped at the end; SQLite: a temp
file), migrations, a workspace, an API key and 16 threads made with the services; then real
``uvicorn threadline.app:create_app`` processes on loopback ports (PostgreSQL: A serves the streams, B
takes the writes, with polling set to 60 s so only LISTEN/NOTIFY can deliver in time; SQLite: one).

1. **Delay**: one subscriber on A; messages POSTed one at a time to B. An event's delay is the time it
   reached the subscriber minus its envelope ``timestamp`` (set inside the writing transaction, before
   the commit: the figure is an upper bound of commit -> delivery). p50 / p95 / p99 / max; target p99 <= 100 ms.
2. **Live throughput**: 16 writers on B, 1 and then 10 subscribers on A; events per second each
   subscriber received, checked complete, in order, without gaps or repeats.
3. **Catch-up**: N events written straight into the log, then one stream from ``after=0`` to the end:
   events per second a resuming client is sent.

Printed, and written to bench/results/events-<db>-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, pct, private_database
from tests.events.sse import frames
from tests.livesrv import live_server

from threadline.agents.schemas import AgentCreate
from threadline.agents.service import create_agent
from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.end_users.schemas import EndUserCreate
from threadline.end_users.service import create_end_user
from threadline.kit.ids import uuid7
from threadline.models import Event, Workspace
from threadline.models.enums import Scope
from threadline.threads.schemas import ThreadCreate
from threadline.threads.service import create_thread
from threadline.workspaces.service import create_workspace

RESULTS = Path(__file__).resolve().parent / "results"
WRITERS = 16
TARGET_P99_MS = 100


async def fixture(url: str, catch_up: int) -> dict[str, Any]:
    engine = create_engine(Settings(database_url=url))
    await migrate.upgrade(engine)
    maker = create_sessionmaker(write_engine(engine), Settings())
    async with maker() as s, s.begin():
        ws = await create_workspace(s, name="bench")
        _, key = await create_key(s, workspace_id=ws.id, scopes=(Scope.ADMIN,), name="bench", actor=Actor.system())
        agent = (await create_agent(s, workspace_id=ws.id, data=AgentCreate(name="bench"))).agent
        user = await create_end_user(s, workspace_id=ws.id, data=EndUserCreate(display_name="bench"))
        threads = [
            await create_thread(
                s,
                workspace_id=ws.id,
                data=ThreadCreate(agent_id=str(agent.public_id), end_user_id=str(user.public_id)),
            )
            for _ in range(WRITERS)
        ]
    # A second workspace whose log is filled directly, for the catch-up stream.
    async with maker() as s, s.begin():
        bulk = await create_workspace(s, name="bulk")
        _, bulk_key = await create_key(
            s, workspace_id=bulk.id, scopes=(Scope.READ,), name="bench", actor=Actor.system()
        )
    now = datetime.now(UTC)
    data = {"object": "message", "content": "x" * 200, "role": "user", "metadata": {}}
    for start in range(0, catch_up, 5000):
        rows = [
            {
                "public_id": uuid7(),
                "workspace_id": bulk.id,
                "seq": seq,
                "type": "message.created",
                "thread_id": uuid7(),
                "data": data,
                "created_at": now,
            }
            for seq in range(start + 1, min(catch_up, start + 5000) + 1)
        ]
        async with maker() as s, s.begin():
            await s.execute(insert(Event), rows)
    async with maker() as s, s.begin():
        await s.execute(update(Workspace).where(Workspace.id == bulk.id).values(last_event_seq=catch_up))
    await engine.dispose()
    return {
        "key": key,
        "bulk_key": bulk_key,
        "threads": [str(t.public_id) for t in threads],
    }


class Subscriber:
    def __init__(self, base: str, key: str, params: dict[str, Any] | None = None) -> None:
        self.client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=None)
        self.params = params or {}
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.opened.wait(), 10)

    async def _run(self) -> None:
        async with self.client.stream("GET", "/v1/events", params=self.params) as r:
            r.raise_for_status()
            self.opened.set()
            async for f in frames(r):
                if f.event and f.id:
                    self.received.append((time.time(), json.loads(f.data)))

    async def until(self, n: int, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while len(self.received) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream got {len(self.received)} of {n} events")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.aclose()


async def measure_delay(read_base: str, write_base: str, fx: dict[str, Any], n: int) -> dict[str, Any]:
    sub = Subscriber(read_base, fx["key"])
    await sub.start()
    async with httpx.AsyncClient(base_url=write_base, headers={"Authorization": f"Bearer {fx['key']}"}) as w:
        for i in range(n):
            r = await w.post(f"/v1/threads/{fx['threads'][0]}/messages", json={"content": f"delay {i}"})
            r.raise_for_status()
            await sub.until(i + 1)
    await sub.close()
    delays = [
        (at - datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()) * 1000
        for at, e in sub.received
    ]
    return {
        "events": n,
        "p50_ms": statistics.median(delays),
        "p95_ms": pct(delays, 95),
        "p99_ms": pct(delays, 99),
        "max_ms": max(delays),
        "target_p99_ms": TARGET_P99_MS,
        "pass": pct(delays, 99) <= TARGET_P99_MS,
    }


async def measure_live(read_base: str, write_base: str, fx: dict[str, Any], subscribers: int, n: int) -> dict:
    subs = [Subscriber(read_base, fx["key"]) for _ in range(subscribers)]
    for s in subs:
        await s.start()
    per_writer = n // WRITERS
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=write_base, headers={"Authorization": f"Bearer {fx['key']}"}, timeout=60
    ) as w:

        async def writer(thread_id: str) -> None:
            for i in range(per_writer):
                (await w.post(f"/v1/threads/{thread_id}/messages", json={"content": f"live {i}"})).raise_for_status()

        await asyncio.gather(*(writer(t) for t in fx["threads"]))
    written_s = time.perf_counter() - started
    total = per_writer * WRITERS
    for s in subs:
        await s.until(total)
    delivered_s = time.perf_counter() - started
    for s in subs:
        seqs = [e["seq"] for _, e in s.received[:total]]
        assert seqs == list(range(seqs[0], seqs[0] + total)), "a stream missed or repeated an event"
        await s.close()
    return {
        "subscribers": subscribers,
        "events": total,
        "write_rate_per_s": total / written_s,
        "delivered_per_subscriber_per_s": total / delivered_s,
        "delivered_total_per_s": total * subscribers / delivered_s,
    }


async def measure_catch_up(base: str, fx: dict[str, Any], n: int) -> dict[str, Any]:
    sub = Subscriber(base, fx["bulk_key"], params={"after": 0})
    started = time.perf_counter()
    await sub.start()
    await sub.until(n, seconds=600)
    elapsed = time.perf_counter() - started
    seqs = [e["seq"] for _, e in sub.received]
    await sub.close()
    assert seqs == list(range(1, n + 1))
    return {"events": n, "seconds": elapsed, "per_s": n / elapsed}


async def run(kind: str, bases: list[str], fx: dict[str, Any], quick: bool, catch_up: int) -> dict[str, Any]:
    read_base, write_base = bases[0], bases[-1]
    result: dict[str, Any] = {
        "db": kind,
        "processes": len(bases),
        "cross_process": len(bases) > 1,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "at": datetime.now(UTC).isoformat(),
    }
    log("delay: one writer, one subscriber")
    result["delay"] = await measure_delay(read_base, write_base, fx, 100 if quick else 1000)
    result["live"] = []
    for n_subs in (1, 10, 100):
        log(f"live: {WRITERS} writers, {n_subs} subscriber(s)")
        result["live"].append(await measure_live(read_base, write_base, fx, n_subs, 320 if quick else 3200))
    log(f"catch-up: {catch_up} events from after=0")
    result["catch_up"] = await measure_catch_up(read_base, fx, catch_up)
    return result


def report(result: dict[str, Any]) -> None:
    d = result["delay"]
    where = "across processes (write on B, stream from A)" if result["cross_process"] else "one process"
    print(f"\nthreadline events benchmark -- {result['db']}, {where}")
    print(
        f"  commit -> SSE delay ({d['events']} events): p50 {d['p50_ms']:.1f} ms  p95 {d['p95_ms']:.1f} ms  "
        f"p99 {d['p99_ms']:.1f} ms  max {d['max_ms']:.1f} ms   target p99 <= {d['target_p99_ms']} ms: "
        f"{'PASS' if d['pass'] else 'FAIL'}"
    )
    for live in result["live"]:
        print(
            f"  live, {live['subscribers']:>2} subscriber(s): {live['events']} events written at "
            f"{live['write_rate_per_s']:.0f}/s; each stream {live['delivered_per_subscriber_per_s']:.0f} events/s, "
            f"all streams {live['delivered_total_per_s']:.0f} events/s (complete, in order)"
        )
    c = result["catch_up"]
    print(f"  catch-up from after=0: {c['events']} events in {c['seconds']:.2f} s = {c['per_s']:.0f} events/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--quick", action="store_true", help="fewer events: a smoke run")
    args = parser.parse_args()
    catch_up = 20_000 if args.quick else 200_000
    # The bench holds more streams on one key than a client should (the default caps are for production).
    env = {
        "THREADLINE_EVENTS_POLL_INTERVAL_S": "60",
        "THREADLINE_LOG_LEVEL": "warning",
        "THREADLINE_STREAMS_PER_KEY": "10000",
        "THREADLINE_STREAMS_PER_WORKSPACE": "10000",
        "THREADLINE_RATE_LIMIT_PER_KEY": "none",
    }
    with private_database(args.db) as url:
        log(f"fixture ({catch_up} events for catch-up)")
        fx = asyncio.run(fixture(url, catch_up))
        with ExitStack() as stack:
            count = 2 if args.db == "postgres" else 1
            bases = [stack.enter_context(live_server(url, **env)) for _ in range(count)]
            result = asyncio.run(run(args.db, bases, fx, args.quick, catch_up))
    report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"events-{args.db}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"  written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
