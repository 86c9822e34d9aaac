"""Agent runtime overhead: from POST of an end user's message to the first streamed token of the reply,
minus the provider's own time to first token.

    .venv/bin/python bench/runs.py --db sqlite              # threadline serve: API and worker in one process
    .venv/bin/python bench/runs.py --db postgres            # the same on PostgreSQL
    .venv/bin/python bench/runs.py --db postgres --split    # threadline api + a separate threadline worker

A private database, an OpenAI-compatible stand-in on 127.0.0.1 that answers at once (tests/fakes), and a
real server process with THREADLINE_OPENAI_BASE_URL pointing at it. First the provider's own time to first
token is measured with the ``openai`` SDK straight against the stand-in; then ``POST
/v1/threads/{id}/messages?stream=true`` is sent N times (round robin over 10 threads of a PROMPT agent), each
timed from sending the request to the first ``message.delta`` frame. Overhead = that minus the provider's p50
time to first token: storing the message and its events, queueing the run, waking and claiming it, building
the context (token counting included), and carrying the delta to the stream. Target: p50 <= 15 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, pct, private_database
from tests.events.sse import frames
from tests.fakes.openai_server import OpenAIStandIn, Reply
from tests.livesrv import live_server

from events import fixture

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P50_MS = 15.0
REPLY = Reply(text="Hello! This is a quick answer from the stand-in model.", chunks=8, usage=(50, 12))


async def provider_ttft(base_url: str, n: int) -> list[float]:
    client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                out.append((time.perf_counter() - started) * 1000)
                break
        await stream.close()
    await client.close()
    return out


async def measure(base: str, key: str, n: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        r = await api.post(
            "/v1/agents",
            json={"name": "bench", "version": {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini"}},
        )
        r.raise_for_status()
        agent = r.json()["id"]
        user = (await api.post("/v1/end_users", json={"display_name": "bench"})).json()["id"]
        threads = [
            (await api.post("/v1/threads", json={"agent_id": agent, "end_user_id": user})).json()["id"]
            for _ in range(10)
        ]
        firsts, totals, headers = [], [], []
        for i in range(n + 10):
            started = time.perf_counter()
            first = None
            async with api.stream(
                "POST",
                f"/v1/threads/{threads[i % 10]}/messages",
                params={"stream": "true"},
                json={"content": f"question {i}"},
            ) as response:
                response.raise_for_status()
                headed = (time.perf_counter() - started) * 1000
                async for f in frames(response):
                    if f.event == "message.delta" and first is None:
                        first = (time.perf_counter() - started) * 1000
            if i >= 10:  # the first ten warm up the process (imports, pools, token tables)
                assert first is not None, "no delta came"
                firsts.append(first)
                headers.append(headed)
                totals.append((time.perf_counter() - started) * 1000)
    return {"first_delta_ms": firsts, "response_start_ms": headers, "whole_answer_ms": totals}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": pct(values, 95), "p99": pct(values, 99), "max": max(values)}


@contextmanager
def split_processes(url: str, env: dict[str, str]) -> Any:
    """``threadline api`` via live_server, plus one ``threadline worker`` process."""
    import os

    worker_env = {**os.environ, **env, "THREADLINE_DATABASE_URL": url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "threadline.cli", "worker"],
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with live_server(url, **env) as base:
            yield base
    finally:
        worker.terminate()
        worker.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="sqlite")
    parser.add_argument("--split", action="store_true", help="api and worker in separate processes")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with OpenAIStandIn() as llm, private_database(args.db) as url:
        llm.default = REPLY
        fx = asyncio.run(fixture(url, 0))
        ttft = asyncio.run(provider_ttft(llm.base_url, args.requests))
        env = {
            "THREADLINE_OPENAI_BASE_URL": llm.base_url,
            "THREADLINE_OPENAI_API_KEY": "sk-bench",
            "THREADLINE_LOG_LEVEL": "warning",
        }
        with ExitStack() as stack:
            if args.split:
                base = stack.enter_context(split_processes(url, env))
            else:
                base = stack.enter_context(live_server(url, THREADLINE_RUN_WORKERS="true", **env))
            log(f"{args.requests} streamed POSTs")
            measured = asyncio.run(measure(base, fx["key"], args.requests))
    provider = statistics.median(ttft)
    first = summary(measured["first_delta_ms"])
    overhead = {k: v - provider for k, v in first.items()}
    mode = "api + worker processes" if args.split else "one process (serve)"
    print(f"\nthreadline run overhead -- {args.db}, {mode}, {args.requests} requests")
    print(f"  provider's own time to first token (SDK -> stand-in): p50 {provider:.1f} ms")
    print(
        f"  POST -> first streamed token: p50 {first['p50']:.1f}  p95 {first['p95']:.1f}  "
        f"p99 {first['p99']:.1f}  max {first['max']:.1f} ms"
    )
    verdict = "PASS" if overhead["p50"] <= TARGET_P50_MS else "FAIL"
    print(
        f"  runtime overhead: p50 {overhead['p50']:.1f}  p95 {overhead['p95']:.1f} ms   "
        f"target p50 <= {TARGET_P50_MS:.0f} ms: {verdict}"
    )
    started = summary(measured["response_start_ms"])
    print(
        f"  of which the POST itself (to the stream's first byte: message, run and job stored, committed): "
        f"p50 {started['p50']:.1f} ms"
    )
    whole = summary(measured["whole_answer_ms"])
    print(f"  whole streamed answer (to run.completed): p50 {whole['p50']:.1f}  p95 {whole['p95']:.1f} ms")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"runs-{args.db}{'-split' if args.split else ''}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "db": args.db,
                "split": args.split,
                "provider_ttft_ms": summary(ttft),
                "first_delta_ms": first,
                "overhead_ms": overhead,
                "response_start_ms": started,
                "whole_answer_ms": whole,
                "target_p50_ms": TARGET_P50_MS,
            },
            indent=2,
        )
    )
    print(f"  written to {out}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
