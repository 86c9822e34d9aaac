"""GET throughput of each vendor mount against /v1, for the same page of the same thread.

    .venv/bin/python bench/dialects.py --db postgres
    .venv/bin/python bench/dialects.py --db sqlite
    .venv/bin/python bench/dialects.py --db sqlite --quick

A private database, a workspace with an agent (PROMPT, one version), an end user and one thread of 100
messages (alternating end user / agent, each a paragraph), all written through /v1 on a real server
process (``uvicorn threadline.app:create_app --factory`` on a free loopback port, no worker). Then the
same 100 messages are read, over and over, through five surfaces:

* /v1:       GET /v1/threads/{uuid}/messages?limit=100
* Aitronos:  GET /aitronos/v1/threads/{uuid}/messages?limit=100
* Feather:   GET /feather/api/v1/threads/{uuid}/messages?limit=100
* Altur:     GET /altur/api/v1.0/message/{uuid}           (the whole thread: the 100 messages)
* camelAI:   GET /camelai/api/v1/threads/{number}/messages (the whole thread: the 100 messages)

Each round measures every surface once, in a shuffled order, for a fixed number of requests from 8
concurrent keep-alive clients; the figure per surface is the median requests/s over the rounds, and its
ratio to /v1's (target: every mount >= 0.85). Interleaving the surfaces within each round spreads the
machine's noise evenly across them. Every response is checked to hold the 100 messages.

Results are printed and written to bench/results/dialects-<db>-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker
from threadline.models.enums import Scope
from threadline.workspaces.service import create_workspace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, private_database
from tests.livesrv import live_server

RESULTS = Path(__file__).resolve().parent / "results"
MESSAGES = 100
CONCURRENCY = 8
TARGET_RATIO = 0.85
PARAGRAPH = (
    "Thanks for getting back to me. I tried the steps you sent yesterday, but the order page still shows the "
    "old delivery address. Could you check whether the change was saved on your side?"
)


async def prepare(url: str) -> str:
    settings = Settings(database_url=url, bootstrap=False)
    engine = create_engine(settings)
    await migrate.upgrade(engine)
    async with create_sessionmaker(engine, Settings())() as session, session.begin():
        ws = await create_workspace(session, name="bench")
        _, key = await create_key(
            session, workspace_id=ws.id, scopes=(Scope.ADMIN,), name="bench", actor=Actor.system()
        )
    await engine.dispose()
    return key


async def seed(base: str, key: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        agent = (
            await api.post(
                "/v1/agents",
                json={"name": "Support", "version": {"mode": "PROMPT", "model": "gpt-4o-mini", "max_tokens": 160}},
            )
        ).json()
        end_user = (await api.post("/v1/end_users", json={"display_name": "Ada"})).json()
        thread = (await api.post("/v1/threads", json={"agent_id": agent["id"], "end_user_id": end_user["id"]})).json()
        for i in range(MESSAGES):
            body = {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {PARAGRAPH}"}
            r = await api.post(f"/v1/threads/{thread['id']}/messages", json=body)
            assert r.status_code == 201, r.text
    return thread


def surfaces(thread: dict[str, Any], key: str) -> dict[str, tuple[str, dict[str, Any], dict[str, str], Any]]:
    """name -> (path, query, headers, how to count the messages in a response body)."""
    uuid, number = thread["id"], thread["number"]
    page = {"limit": MESSAGES}
    return {
        "v1": (f"/v1/threads/{uuid}/messages", page, {"Authorization": f"Bearer {key}"}, lambda b: len(b["data"])),
        "aitronos": (f"/aitronos/v1/threads/{uuid}/messages", page, {"X-API-Key": key}, lambda b: len(b["data"])),
        "feather": (
            f"/feather/api/v1/threads/{uuid}/messages",
            page,
            {"X-API-Key": key},
            lambda b: len(b["thread"]["messages"]),
        ),
        "altur": (f"/altur/api/v1.0/message/{uuid}", {}, {"Authorization": f"api-key {key}"}, len),
        "camelai": (
            f"/camelai/api/v1/threads/{number}/messages",
            {},
            {"Authorization": f"Bearer {key}"},
            lambda b: b["message_count"],
        ),
    }


async def burst(client: httpx.AsyncClient, path: str, query: dict[str, Any], headers: dict[str, str], n: int) -> float:
    """Requests per second for ``n`` GETs from CONCURRENCY clients."""
    remaining = n

    async def one_client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            r = await client.get(path, params=query, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - started)


async def measure(base: str, thread: dict[str, Any], key: str, rounds: int, per_round: int) -> dict[str, list[float]]:
    cases = surfaces(thread, key)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for name, (path, query, headers, count) in cases.items():
            r = await client.get(path, params=query, headers=headers)
            assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:300]}"
            assert count(r.json()) == MESSAGES, f"{name} does not show the {MESSAGES} messages"
            await burst(client, path, query, headers, per_round // 2)  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(rounds):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                path, query, headers, _ = cases[name]
                rates[name].append(await burst(client, path, query, headers, per_round))
            log(f"round {i + 1}/{rounds}: " + "  ".join(f"{n} {statistics.median(r):.0f}/s" for n, r in rates.items()))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 200 requests (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per surface per round")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)
    per_round = args.requests or (200 if args.quick else 600)
    with private_database(args.db) as url:
        key = asyncio.run(prepare(url))
        with live_server(url, THREADLINE_LOG_LEVEL="warning") as base:
            thread = asyncio.run(seed(base, key))
            log(f"{rounds} rounds x {per_round} requests per surface, {CONCURRENCY} concurrent clients")
            rates = asyncio.run(measure(base, thread, key, rounds, per_round))
    v1 = statistics.median(rates["v1"])
    print(f"\nGET throughput, the same {MESSAGES} messages -- {args.db}, {rounds} rounds x {per_round} requests")
    results: dict[str, Any] = {}
    failed = []
    for name, values in rates.items():
        median = statistics.median(values)
        ratio = median / v1
        verdict = "" if name == "v1" else ("PASS" if ratio >= TARGET_RATIO else "FAIL")
        if verdict == "FAIL":
            failed.append(name)
        print(
            f"  {name:9s} {median:7.0f} req/s  (min {min(values):.0f}, max {max(values):.0f})  x{ratio:.2f} {verdict}"
        )
        results[name] = {"median_rps": median, "min_rps": min(values), "max_rps": max(values), "ratio_to_v1": ratio}
    print(f"  target: every mount >= {TARGET_RATIO:.2f} x /v1: {'FAIL ' + ', '.join(failed) if failed else 'PASS'}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"dialects-{args.db}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"db": args.db, "rounds": rounds, "per_round": per_round, "surfaces": results}, indent=2))
    print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
