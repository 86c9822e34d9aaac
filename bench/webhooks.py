"""Webhook benchmark: deliveries per second end to end, events recorded -> deliveries -> worker -> receiver.

    .venv/bin/python bench/webhooks.py --db postgres
    .venv/bin/python bench/webhooks.py --db sqlite
    .venv/bin/python bench/webhooks.py --db sqlite --quick

Steps: a private database (PostgreSQL ``threadline_bench_<random>``, dropped at the end; SQLite: a temp
file), migrations, a workspace, an API key, an agent, an end user and 16 threads (inactive: no agent
answers) made with the services. Then three processes on loopback ports:

* the API: ``uvicorn threadline.app:create_app`` without workers;
* the receiver: a small ASGI app under uvicorn (this file, ``--receiver``) that verifies every delivery
  twice, with ``standardwebhooks`` and with its own HMAC-SHA256, and counts them;
* a worker: ``threadline worker --kind webhooks.deliver --concurrency C``, started when a phase says so.

One webhook endpoint, subscribed to ``message.created``, points at the receiver; every event is one
delivery. Writers are 16 clients POSTing messages to the API, one thread each.

1. **Backlog**, for each concurrency C: N messages POSTed with no worker running (their deliveries wait
   in the queue), then the worker starts; deliveries per second from its first delivery to the last one
   verified (and from its start, start-up included).
2. **Live**: the worker runs (C = the last of the list) while the writers POST N messages; the rate at
   which deliveries reach the receiver, and the delay from each event's timestamp (set in the writing
   transaction) to its arrival: p50 / p95 / p99.

After each phase: every event arrived exactly once, every signature verified, and every delivery is
``succeeded`` after one attempt. Printed, and written to bench/results/webhooks-<db>-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, pct, private_database
from tests.livesrv import free_port, live_server

from threadline.agents.schemas import AgentCreate
from threadline.agents.service import create_agent
from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.end_users.schemas import EndUserCreate
from threadline.end_users.service import create_end_user
from threadline.models import WebhookDelivery
from threadline.models.enums import Scope
from threadline.threads.schemas import ThreadCreate
from threadline.threads.service import create_thread
from threadline.workspaces.service import create_workspace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WRITERS = 16


# ---------------------------------------------------------------------------------------------- receiver


class ReceiverApp:
    """An ASGI receiver: POST anything = a delivery (verified, counted); GET /stats; POST /reset."""

    def __init__(self, secret: str) -> None:
        import base64

        from standardwebhooks import Webhook

        self.webhook = Webhook(secret)
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.reset()

    def reset(self) -> None:
        self.ids: dict[str, int] = {}
        self.bad = 0
        self.delays_ms: list[float] = []
        self.first_at: float | None = None
        self.last_at: float | None = None

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        import base64
        import hashlib
        import hmac

        try:
            self.webhook.verify(body, headers)
        except Exception:
            return False
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest()).decode()
        sigs = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
        return any(hmac.compare_digest(expected, s) for s in sigs)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = b"ok"
        if scope["method"] == "GET" and scope["path"] == "/stats":
            answer = json.dumps(
                {
                    "unique": len(self.ids),
                    "total": sum(self.ids.values()),
                    "bad": self.bad,
                    "first_at": self.first_at,
                    "last_at": self.last_at,
                    "delays_ms": self.delays_ms,
                }
            ).encode()
        elif scope["path"] == "/reset":
            self.reset()
        else:
            now = time.time()
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if not self.verify(headers, body):
                self.bad += 1
            event_id = headers.get("webhook-id", "")
            self.ids[event_id] = self.ids.get(event_id, 0) + 1
            stamp = json.loads(body)["timestamp"]
            self.delays_ms.append((now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()) * 1000)
            self.first_at = self.first_at or now
            self.last_at = now
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": answer})


def serve_receiver(port: int) -> None:
    import uvicorn

    app = ReceiverApp(os.environ["BENCH_WEBHOOK_SECRET"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(args: list[str], env: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    log_file = tempfile.NamedTemporaryFile(prefix=f"threadline-bench-{name}-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        if proc.returncode not in (0, -signal.SIGTERM):
            log(f"{name} exited with {proc.returncode}; log: {log_file.name}")


# ---------------------------------------------------------------------------------------------- fixture


async def fixture(url: str) -> dict[str, Any]:
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
                data=ThreadCreate(agent_id=str(agent.public_id), end_user_id=str(user.public_id), active=False),
            )
            for _ in range(WRITERS)
        ]
    await engine.dispose()
    return {"key": key, "threads": [str(t.public_id) for t in threads]}


async def delivery_states(url: str) -> dict[str, Any]:
    engine = create_engine(Settings(database_url=url))
    try:
        async with create_sessionmaker(engine, Settings())() as s:
            rows = await s.execute(
                select(WebhookDelivery.status, WebhookDelivery.attempts, func.count()).group_by(
                    WebhookDelivery.status, WebhookDelivery.attempts
                )
            )
            return {f"{status}/{attempts}": n for status, attempts, n in rows.all()}
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------- phases


class Bench:
    def __init__(self, url: str, api: str, receiver: str, fx: dict[str, Any], worker_env: dict[str, str]) -> None:
        self.url = url
        self.api = httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {fx['key']}"}, timeout=60)
        self.receiver = httpx.AsyncClient(base_url=receiver, timeout=10)
        self.threads = fx["threads"]
        self.worker_env = worker_env
        self.sent = 0

    async def write(self, n: int) -> float:
        """POST n messages with 16 writers; returns messages per second."""
        per_writer = n // WRITERS
        started = time.perf_counter()

        async def writer(thread_id: str) -> None:
            for i in range(per_writer):
                r = await self.api.post(f"/v1/threads/{thread_id}/messages", json={"content": f"bench {i}"})
                r.raise_for_status()

        await asyncio.gather(*(writer(t) for t in self.threads))
        self.sent += per_writer * WRITERS
        return per_writer * WRITERS / (time.perf_counter() - started)

    async def stats(self) -> dict[str, Any]:
        r = await self.receiver.get("/stats")
        r.raise_for_status()
        stats: dict[str, Any] = r.json()
        return stats

    async def until_received(self, n: int, seconds: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            stats = await self.stats()
            if stats["unique"] >= n:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"the receiver got {stats['unique']} of {n} deliveries")
            await asyncio.sleep(0.05)

    def check(self, stats: dict[str, Any], n: int) -> None:
        assert stats["bad"] == 0, f"{stats['bad']} deliveries failed verification"
        assert stats["unique"] == n and stats["total"] == n, f"received {stats['total']} for {n} events"

    @contextmanager
    def worker(self, concurrency: int) -> Iterator[subprocess.Popen[bytes]]:
        args = [sys.executable, "-m", "threadline.cli", "worker", "--kind", "webhooks.deliver"]
        with process([*args, "--concurrency", str(concurrency)], self.worker_env, f"worker-c{concurrency}") as proc:
            yield proc

    async def backlog(self, n: int, concurrency: int) -> dict[str, Any]:
        await self.receiver.post("/reset")
        write_rate = await self.write(n)
        started = time.time()
        with self.worker(concurrency) as proc:
            await self.until_received(1)
            cpu_before = cpu_seconds(proc.pid)
            stats = await self.until_received(n)
            cpu = cpu_seconds(proc.pid) - cpu_before
        self.check(stats, n)
        return {
            "concurrency": concurrency,
            "deliveries": n,
            "write_rate_per_s": write_rate,
            "per_s": n / (stats["last_at"] - stats["first_at"]),
            "per_s_with_startup": n / (stats["last_at"] - started),
            "worker_cpu_ms_per_delivery": cpu * 1000 / (n - 1),
            "states": await delivery_states(self.url),
        }

    async def live(self, n: int, concurrency: int) -> dict[str, Any]:
        await self.receiver.post("/reset")
        with self.worker(concurrency) as proc:
            await asyncio.sleep(2)  # the worker is up and idle
            cpu_before = cpu_seconds(proc.pid)
            started = time.time()
            write_rate = await self.write(n)
            stats = await self.until_received(n)
            cpu = cpu_seconds(proc.pid) - cpu_before
        self.check(stats, n)
        delays = stats["delays_ms"]
        return {
            "concurrency": concurrency,
            "deliveries": n,
            "write_rate_per_s": write_rate,
            "per_s": n / (stats["last_at"] - started),
            "delay_p50_ms": statistics.median(delays),
            "delay_p95_ms": pct(delays, 95),
            "delay_p99_ms": pct(delays, 99),
            "delay_max_ms": max(delays),
            "worker_cpu_ms_per_delivery": cpu * 1000 / n,
            "states": await delivery_states(self.url),
        }

    async def close(self) -> None:
        await self.api.aclose()
        await self.receiver.aclose()


async def run(bench: Bench, kind: str, n: int, concurrencies: list[int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "db": kind,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load": os.getloadavg()},
        "at": datetime.now(UTC).isoformat(),
        "backlog": [],
    }
    try:
        for c in concurrencies:
            log(f"backlog: {n} deliveries, worker concurrency {c}")
            result["backlog"].append(await bench.backlog(n, c))
        log(f"live: {n} messages written while the worker (concurrency {concurrencies[-1]}) delivers")
        result["live"] = await bench.live(n, concurrencies[-1])
    finally:
        await bench.close()
    states = result["live"]["states"]
    assert states == {"succeeded/1": bench.sent}, f"deliveries not all succeeded at the first attempt: {states}"
    return result


async def create_endpoint(api: str, key: str, receiver_url: str) -> str:
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}) as client:
        r = await client.post("/v1/webhooks", json={"url": receiver_url, "event_types": ["message.created"]})
        r.raise_for_status()
        secret: str = r.json()["secret"]
        return secret


def report(result: dict[str, Any]) -> None:
    print(f"\nthreadline webhooks benchmark -- {result['db']}, load average {result['machine']['load'][0]:.1f}")
    for b in result["backlog"]:
        print(
            f"  backlog, worker concurrency {b['concurrency']:>2}: {b['deliveries']} deliveries at "
            f"{b['per_s']:.0f}/s ({b['per_s_with_startup']:.0f}/s counting the worker's start-up), worker CPU "
            f"{b['worker_cpu_ms_per_delivery']:.1f} ms each; written at {b['write_rate_per_s']:.0f} messages/s"
        )
    live = result["live"]
    print(
        f"  live, worker concurrency {live['concurrency']:>2}: {live['deliveries']} messages written at "
        f"{live['write_rate_per_s']:.0f}/s, delivered at {live['per_s']:.0f}/s; event -> receiver delay "
        f"p50 {live['delay_p50_ms']:.0f} ms  p95 {live['delay_p95_ms']:.0f} ms  p99 {live['delay_p99_ms']:.0f} ms  "
        f"max {live['delay_max_ms']:.0f} ms; worker CPU {live['worker_cpu_ms_per_delivery']:.1f} ms each"
    )
    print("  every delivery verified (standardwebhooks and HMAC), received once, succeeded at the first attempt")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--quick", action="store_true", help="fewer deliveries: a smoke run")
    parser.add_argument("--deliveries", type=int, help="deliveries per phase (default 4,000; --quick 800)")
    parser.add_argument("--concurrency", default="8,32", help="worker concurrencies to measure (default 8,32)")
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return 0
    n = args.deliveries or (800 if args.quick else 4000)
    n -= n % WRITERS
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    secret_key = Fernet.generate_key().decode()
    common = {
        "THREADLINE_SECRET_KEYS": secret_key,
        "THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "THREADLINE_LOG_LEVEL": "warning",
    }
    with private_database(args.db) as url:
        log("fixture")
        fx = asyncio.run(fixture(url))
        receiver_port = free_port()
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        with live_server(url, **common) as api:
            secret = asyncio.run(create_endpoint(api, fx["key"], receiver_url + "/hook"))
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
            receiver_env = {**base_env, "BENCH_WEBHOOK_SECRET": secret}
            worker_env = {
                **base_env,
                **common,
                "THREADLINE_DATABASE_URL": url,
                "THREADLINE_WORKER_POLL_INTERVAL_S": "0.2",
            }
            args_receiver = [sys.executable, str(Path(__file__).resolve()), "--receiver", str(receiver_port)]
            with process(args_receiver, receiver_env, "receiver"):
                deadline = time.monotonic() + 20
                while True:
                    try:
                        httpx.get(receiver_url + "/stats", timeout=1).raise_for_status()
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                bench = Bench(url, api, receiver_url, fx, worker_env)
                result = asyncio.run(run(bench, args.db, n, concurrencies))
    report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"webhooks-{args.db}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"  written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
