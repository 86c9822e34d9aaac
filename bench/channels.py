"""SMS conversations under load, end to end through real processes: Twilio's signed webhook in, a FLOW agent's
answer out through the Twilio stand-in, and Twilio's delivery reports back.

    .venv/bin/python bench/channels.py --db postgres            # threadline serve: API and workers in one process
    .venv/bin/python bench/channels.py --db sqlite              # the same on SQLite
    .venv/bin/python bench/channels.py --db postgres --split    # an API process + a separate `threadline worker`

A private database, a workspace and an admin key made with the services, then a real server process on a port
chosen beforehand, so that ``THREADLINE_PUBLIC_BASE_URL`` names it (Twilio signs over that URL, and the
``StatusCallback`` of each reply points there), with private URLs allowed for the stand-in on loopback, no
debounce and a secret key. Through /v1: a FLOW agent whose one node answers every message at once with its
text echoed (``ok <text>``) and waits for the next, and an ``sms`` integration whose ``api_base_url`` is the
Twilio stand-in (tests/fakes/twilio_server.py). The stand-in records, in its own thread, when each reply's POST
arrived, whom it is for (``To``), its body and the message id of its ``StatusCallback``.

1. **Latency**: K inbound SMS (after 10 warm-up ones) from 20 senders round robin, one at a time, each signed
   with the ``twilio`` package's ``RequestValidator`` over the exact URL; timed from sending the webhook POST
   to its answer (Twilio wants it fast), and to the moment the stand-in received the reply.
2. **Throughput**: 100 other senders each open a conversation (one message, answered, not timed: the first
   run of a new conversation answers all the messages that started it with one reply, docs/flows.md); then
   N inbound SMS from them, round robin, posted by 20 concurrent clients: webhook requests/s, and replies
   per second until the stand-in has them all. Each reply echoes the text it answers, so every inbound is
   checked answered exactly once and to its sender; no reply message id may be sent twice. Messages that
   arrive while their thread's run runs are all answered by the thread's next run, so runs can be fewer
   than messages.
3. **Delivery reports**: Twilio's ``delivered`` callback for every message sent, by 20 concurrent clients;
   callbacks/s, then every outbound message is read back from the database: all must be ``DELIVERED``.

Options: ``--latency K`` (default 200), ``--messages N`` (default 500). Printed, and written to
bench/results/channels-<db>[-split]-<timestamp>.json (git-ignored). No target: the exit status is 1 when a
check fails (a webhook not answered with empty TwiML, an inbound without exactly one reply, a message not
DELIVERED); each inbound left unanswered is traced in the JSON to the run of its thread that counted it as
answered, with that run's replies. Error lines of the processes' logs are counted and the first shown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, pct, private_database
from tests.fakes.twilio_server import Accept, ReceivedRequest, TwilioStandIn
from tests.livesrv import free_port, live_server, server_log

from threadline.api_keys.service import create_key
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.models import Integration, Job, Message, Run
from threadline.models.enums import Direction, JobState, Scope
from threadline.workspaces.service import create_workspace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FROM_NUMBER = "+15005550006"
WARM_UP = 10
LATENCY_SENDERS = 20
THROUGHPUT_SENDERS = 100
CONCURRENCY = 20
WITHIN_S = 60.0  # a bound on a wait that ends the bench with the processes' logs, not a target
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# One node: it sends the echo of the latest message and waits; the reply to that question goes back to it. So
# every message is answered by one text, also when several reach one run (each is taken as a reply in turn).
ECHO_FLOW: dict[str, Any] = {
    "version": 1,
    "description": "bench/channels.py: answers every message at once",
    "start": "answer",
    "nodes": {"answer": {"type": "ask", "text": "ok {{input.text}}", "next": "answer"}},
}


def sender(phase: int, index: int) -> str:
    """A distinct E.164 number per phase and sender (the stand-in accepts only valid ones)."""
    return f"+1555{phase}{index:06d}"


@dataclass
class Received:
    at: float  # time.perf_counter() in the stand-in's thread, once the request's body was read
    to: str
    body: str
    message_id: str | None


class Replies:
    """The stand-in's answer to every send: it records the reply (when, to whom, what, which message) and
    accepts it. A waiter may ask for the reply with a given body and is woken from the stand-in's thread."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Received]]] = {}

    def __call__(self, request: ReceivedRequest) -> Accept:
        at = time.perf_counter()
        form = request.form
        callback = form.get("StatusCallback") or ""
        tags = parse_qs(urlsplit(callback).query).get("message")
        message_id = tags[0] if tags else None
        got = Received(at, form.get("To", ""), form.get("Body", ""), message_id)
        with self._lock:
            self.received.append(got)
            waiter = self._waiting.pop(got.body, None)
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_resolve, future, got)
        return Accept()

    def expect(self, body: str) -> asyncio.Future[Received]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Received] = loop.create_future()
        with self._lock:
            self._waiting[body] = (loop, future)
        return future

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def _resolve(future: asyncio.Future[Received], got: Received) -> None:
    if not future.done():
        future.set_result(got)


class Line:
    """The sms integration as Twilio knows it: where it posts, and how it signs."""

    def __init__(self, base: str, integration_id: str, auth_token: str, account_sid: str) -> None:
        self.id = integration_id
        self.sms_url = f"{base}/channels/twilio/{integration_id}/sms"
        self.validator = RequestValidator(auth_token)
        self.account_sid = account_sid

    def inbound(self, frm: str, body: str) -> tuple[dict[str, str], dict[str, str]]:
        """An incoming SMS's form fields and its signature header, signed over the exact URL it is posted to."""
        sid = "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "FromCountry": "US",
            "To": FROM_NUMBER,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": frm,
            "ApiVersion": "2010-04-01",
        }
        return params, self.signed(self.sms_url, params)

    def signed(self, url: str, params: dict[str, str]) -> dict[str, str]:
        return {"X-Twilio-Signature": self.validator.compute_signature(url, params)}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values),
        "n": len(values),
    }


# ---------------------------------------------------------------------------------------------------- setup


async def workspace(url: str) -> str:
    """Migrations, a workspace and an admin key; returns the key."""
    engine = create_engine(Settings(database_url=url))
    await migrate.upgrade(engine)
    maker = create_sessionmaker(write_engine(engine))
    async with maker() as s, s.begin():
        ws = await create_workspace(s, name="bench")
        _, key = await create_key(s, workspace_id=ws.id, scopes=(Scope.ADMIN,), name="bench")
    await engine.dispose()
    return key


async def agent_and_line(base: str, key: str, twilio: TwilioStandIn) -> Line:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        r = await api.post(
            "/v1/agents",
            json={"name": "echo", "type": "TEXT", "version": {"mode": "FLOW", "provider": "flow", "flow": ECHO_FLOW}},
        )
        r.raise_for_status()
        agent = r.json()["id"]
        r = await api.post(
            "/v1/integrations",
            json={
                "type": "sms",
                "name": "bench line",
                "agent_id": agent,
                "settings": {
                    "account_sid": twilio.account_sid,
                    "from_number": FROM_NUMBER,
                    "api_base_url": twilio.base_url,
                },
                "secrets": {"auth_token": twilio.auth_token},
            },
        )
        r.raise_for_status()
        return Line(base, r.json()["id"], twilio.auth_token, twilio.account_sid)


@contextmanager
def worker_process(url: str, env: dict[str, str]) -> Iterator[Path]:
    """A ``threadline worker`` (all kinds) with the channel settings; yields its log, once it runs."""
    fd, name = tempfile.mkstemp(prefix="threadline-worker-", suffix=".log")
    os.close(fd)
    log_path = Path(name)
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    worker_env.update(THREADLINE_DATABASE_URL=url, THREADLINE_LOG_LEVEL="warning", **env)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli", "worker"],
            cwd=ROOT,
            env=worker_env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while "running on" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------------- database


class Store:
    """Reads back what the processes stored: messages of the line by direction and status, runs by status,
    jobs not finished."""

    def __init__(self, url: str, integration_id: str) -> None:
        self.engine = create_engine(Settings(database_url=url))
        self.maker = create_sessionmaker(self.engine)
        self.integration = (
            select(Integration.id).where(Integration.public_id == uuid.UUID(integration_id)).scalar_subquery()
        )

    async def messages(self) -> dict[str, dict[str, int]]:
        stmt = (
            select(Message.direction, Message.status, func.count())
            .where(Message.integration_id == self.integration)
            .group_by(Message.direction, Message.status)
        )
        out: dict[str, dict[str, int]] = {}
        async with self.maker() as s:
            for direction, status, n in (await s.execute(stmt)).all():
                out.setdefault(str(direction), {})[str(status)] = int(n)
        return out

    async def runs(self) -> dict[str, int]:
        async with self.maker() as s:
            rows = (await s.execute(select(Run.status, func.count()).group_by(Run.status))).all()
        return {str(status): int(n) for status, n in rows}

    async def open_jobs(self) -> int:
        stmt = select(func.count()).select_from(Job).where(Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
        async with self.maker() as s:
            return int((await s.execute(stmt)).scalar_one())

    async def unanswered(self, bodies: list[str]) -> list[dict[str, Any]]:
        """For each inbound that got no reply: the run of its thread that counted it as answered (the first
        completed one whose ``input_seq`` reaches its ``seq``) and that run's replies."""
        out = []
        async with self.maker() as s:
            stmt = select(Message).where(
                Message.integration_id == self.integration,
                Message.direction == Direction.INBOUND,
                Message.content.in_(bodies),
            )
            for m in (await s.execute(stmt)).scalars():
                taken = (
                    await s.execute(
                        select(Run)
                        .where(Run.thread_id == m.thread_id, Run.input_seq >= m.seq, Run.status == "completed")
                        .order_by(Run.id)
                        .limit(1)
                    )
                ).scalar_one_or_none()
                entry: dict[str, Any] = {"body": m.content, "thread": m.thread_id, "seq": m.seq}
                if taken is not None:
                    replies = await s.execute(select(Message.content).where(Message.run_id == taken.id))
                    entry.update(
                        run=taken.id,
                        run_input_seq=taken.input_seq,
                        run_replies=[r for (r,) in replies.all()],
                    )
                out.append(entry)
        return sorted(out, key=lambda e: (e["thread"], e["seq"]))

    async def close(self) -> None:
        await self.engine.dispose()


# ---------------------------------------------------------------------------------------------------- phases


async def latency(base: str, line: Line, replies: Replies, k: int) -> dict[str, Any]:
    """One inbound at a time; each waits for its own reply at the stand-in before the next goes."""
    webhook, to_reply, errors = [], [], Counter[str]()
    async with httpx.AsyncClient(base_url=base, timeout=30) as provider:
        for i in range(WARM_UP + k):
            to = sender(1, i % LATENCY_SENDERS)
            body = f"latency {i}"
            params, headers = line.inbound(to, body)
            reply = replies.expect(f"ok {body}")
            started = time.perf_counter()
            r = await provider.post(line.sms_url, data=params, headers=headers)
            answered = time.perf_counter()
            if r.status_code != 200 or r.text != EMPTY_TWIML:
                errors[f"{r.status_code}"] += 1
                continue
            try:
                got = await asyncio.wait_for(reply, WITHIN_S)
            except TimeoutError:
                errors["no reply"] += 1
                continue
            if got.to != to:
                errors["wrong recipient"] += 1
            if i >= WARM_UP:  # the first ones warm up the processes (imports, pools, the flow's parse)
                webhook.append((answered - started) * 1000)
                to_reply.append((got.at - started) * 1000)
    return {"webhook_ms": webhook, "inbound_to_reply_ms": to_reply, "errors": dict(errors)}


async def post_all(
    ok: Callable[[httpx.Response], bool], items: list[tuple[str, dict[str, str], dict[str, str]]]
) -> tuple[list[float], Counter[str], float]:
    """POST every (url, form, headers) with CONCURRENCY clients on keep-alive connections; the latency of
    each answered request, the failures by status or exception, and the seconds it took."""
    queue: asyncio.Queue[tuple[str, dict[str, str], dict[str, str]]] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    times: list[float] = []
    errors = Counter[str]()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as provider:

        async def client() -> None:
            while not queue.empty():
                url, params, headers = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    r = await provider.post(url, data=params, headers=headers)
                except httpx.TransportError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                times.append((time.perf_counter() - t0) * 1000)
                if not ok(r):
                    errors[str(r.status_code)] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        return times, errors, time.perf_counter() - started


def empty_twiml(r: httpx.Response) -> bool:
    return r.status_code == 200 and r.text == EMPTY_TWIML


async def settle(replies: Replies, store: Store, target: int) -> None:
    """Until the stand-in has ``target`` replies, or nothing is left to do (no job open, no new reply for
    2 s): what cannot come is then reported by the checks instead of hanging the bench."""
    deadline = time.monotonic() + WITHIN_S
    last_count, last_change = -1, time.monotonic()
    while replies.count() < target:
        count = replies.count()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > 2 and await store.open_jobs() == 0:
            return
        if time.monotonic() > deadline:
            log(f"gave up waiting: {replies.count()} of {target} replies")
            return
        await asyncio.sleep(0.02)


async def throughput(line: Line, replies: Replies, store: Store, n: int) -> dict[str, Any]:
    """First each of the 100 senders opens its conversation (one message each, answered, not timed: a new
    conversation's first run answers the messages that started it with one reply, docs/flows.md). Then N
    messages, round robin over the senders, 20 at a time; then the wait until every one is answered, and
    the checks of what the stand-in got."""
    openers = [line.inbound(sender(2, i), f"hello {i}") for i in range(THROUGHPUT_SENDERS)]
    _, errors, _ = await post_all(empty_twiml, [(line.sms_url, p, h) for p, h in openers])
    await settle(replies, store, replies.count() + THROUGHPUT_SENDERS - sum(errors.values()))

    signed = []
    for i in range(n):
        to, body = sender(2, i % THROUGHPUT_SENDERS), f"load {i}"
        signed.append((to, body, *line.inbound(to, body)))
    before = replies.count()
    runs_before = sum((await store.runs()).values())
    started = time.perf_counter()
    times, errors, posting = await post_all(empty_twiml, [(line.sms_url, p, h) for _, _, p, h in signed])
    posted = started + posting
    await settle(replies, store, before + n)
    got = replies.snapshot()[before:]
    done = max((r.at for r in got), default=posted)

    # Every inbound answered once (the reply echoes its text), to its sender; no message id sent twice.
    sent_by = {body: to for to, body, _, _ in signed}
    echoed = Counter(r.body.removeprefix("ok ") for r in got)
    ids = Counter(r.message_id for r in got)
    await asyncio.sleep(0.5)  # the last runs' records commit just after their replies went out
    runs = sum((await store.runs()).values()) - runs_before
    unanswered = await store.unanswered([body for body in sent_by if echoed[body] == 0])
    return {
        "messages": n,
        "senders": THROUGHPUT_SENDERS,
        "concurrency": CONCURRENCY,
        "webhook_errors": dict(errors),
        "webhook_ms": summary(times) if times else {},
        "webhook_per_s": len(times) / posting,
        "posting_s": posting,
        "replies": len(got),
        "replies_s": done - started,
        "replies_per_s": len(got) / (done - started),
        "runs": runs,
        "unanswered": sum(1 for body in sent_by if echoed[body] == 0),
        "unanswered_detail": unanswered,
        "answered_twice": sum(1 for body in sent_by if echoed[body] > 1),
        "unexpected_replies": sum(1 for body in echoed if body not in sent_by),
        "wrong_recipient": sum(1 for r in got if sent_by.get(r.body.removeprefix("ok ")) != r.to),
        "reply_ids_unique": len(ids),
        "reply_ids_sent_twice": sum(1 for v in ids.values() if v > 1),
        "reply_ids_missing": ids.get(None, 0),
    }


async def callbacks(line: Line, twilio: TwilioStandIn, store: Store) -> dict[str, Any]:
    """Twilio's ``delivered`` report for every message the stand-in took, 20 at a time; then every outbound
    message of the line is read back."""
    reports = []
    for resource in twilio.messages:
        url, params = twilio.status_callback(resource["sid"], "delivered")
        assert url is not None, "a reply was sent without a StatusCallback"
        reports.append((url, params, line.signed(url, params)))
    times, errors, elapsed = await post_all(lambda r: r.status_code == 200, reports)
    stored = await store.messages()
    outbound = stored.get(str(Direction.OUTBOUND), {})
    return {
        "callbacks": len(reports),
        "errors": dict(errors),
        "callback_ms": summary(times) if times else {},
        "callbacks_per_s": len(times) / elapsed,
        "outbound_by_status": outbound,
        "inbound_by_status": stored.get(str(Direction.INBOUND), {}),
        "all_delivered": set(outbound) == {"DELIVERED"} and outbound["DELIVERED"] == len(reports),
    }


async def measure(base: str, key: str, url: str, twilio: TwilioStandIn, replies: Replies, args: Any) -> dict[str, Any]:
    line = await agent_and_line(base, key, twilio)
    store = Store(url, line.id)
    try:
        log(f"latency: {WARM_UP} + {args.latency} inbound SMS one at a time, {LATENCY_SENDERS} senders")
        lat = await latency(base, line, replies, args.latency)
        log(f"throughput: {args.messages} inbound SMS, {THROUGHPUT_SENDERS} senders, {CONCURRENCY} concurrent")
        thr = await throughput(line, replies, store, args.messages)
        log(f"status callbacks: 'delivered' for the {len(twilio.messages)} messages sent, {CONCURRENCY} concurrent")
        cb = await callbacks(line, twilio, store)
        runs = await store.runs()
    finally:
        await store.close()
    return {"latency": lat, "throughput": thr, "callbacks": cb, "runs_by_status": runs}


# ---------------------------------------------------------------------------------------------------- main


def problems_in(text: str) -> list[str]:
    """Lines of a process's log that say something went wrong (it logs at warning and above)."""
    return [line for line in text.splitlines() if "Traceback" in line or '"error"' in line or "ERROR" in line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="sqlite")
    parser.add_argument("--split", action="store_true", help="an API process and a separate worker process")
    parser.add_argument("--latency", type=int, default=200, help="inbound SMS timed one at a time (K)")
    parser.add_argument("--messages", type=int, default=500, help="inbound SMS for the throughput phase (N)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    began = time.perf_counter()
    replies = Replies()
    with TwilioStandIn() as twilio, private_database(args.db) as url:
        twilio.default = replies
        key = asyncio.run(workspace(url))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "THREADLINE_PUBLIC_BASE_URL": base,
            "THREADLINE_CHANNEL_ALLOW_PRIVATE_URLS": "true",
            "THREADLINE_SECRET_KEYS": Fernet.generate_key().decode(),
            "THREADLINE_RUN_DEBOUNCE_MESSAGING_S": "0",
        }
        worker_log: Path | None = None
        with ExitStack() as stack:
            if args.split:
                worker_log = stack.enter_context(worker_process(url, env))
            workers = "false" if args.split else "true"
            stack.enter_context(live_server(url, port=port, THREADLINE_RUN_WORKERS=workers, **env))
            measured = asyncio.run(measure(base, key, url, twilio, replies, args))
            logs = {"server": server_log(base)}
            if worker_log is not None:
                logs["worker"] = worker_log.read_text(errors="replace")
    load_after = os.getloadavg()
    problems = {name: problems_in(text) for name, text in logs.items()}

    lat, thr, cb = measured["latency"], measured["throughput"], measured["callbacks"]
    webhook, to_reply = summary(lat["webhook_ms"]), summary(lat["inbound_to_reply_ms"])
    mode = "api + worker processes" if args.split else "one process (serve)"
    print(f"\nthreadline SMS conversations -- {args.db}, {mode}")
    print(f"  load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end")
    print(f"  1. latency, {webhook['n']} inbound one at a time ({LATENCY_SENDERS} senders), ms:")
    for name, s in (("webhook answered (empty TwiML)", webhook), ("inbound -> reply at the provider", to_reply)):
        print(f"     {name:34} p50 {s['p50']:7.1f}  p95 {s['p95']:7.1f}  p99 {s['p99']:7.1f}  max {s['max']:7.1f}")
    if lat["errors"]:
        print(f"     webhook errors: {lat['errors']}")
    w = thr["webhook_ms"]
    print(f"  2. throughput, {thr['messages']} inbound from {thr['senders']} senders, {thr['concurrency']} concurrent:")
    print(
        f"     webhooks {thr['webhook_per_s']:.0f}/s (p50 {w.get('p50', 0):.1f}  p99 {w.get('p99', 0):.1f} ms); "
        f"replies {thr['replies']} in {thr['replies_s']:.1f} s = {thr['replies_per_s']:.0f}/s; runs {thr['runs']}"
    )
    print(
        f"     unanswered {thr['unanswered']}, answered twice {thr['answered_twice']}, to the wrong number "
        f"{thr['wrong_recipient']}, reply ids sent twice {thr['reply_ids_sent_twice']}, webhook errors "
        f"{thr['webhook_errors'] or 'none'}"
    )
    if thr["unanswered_detail"]:
        stored = thr["unanswered_detail"]
        taken = sum(1 for e in stored if "run" in e and f"ok {e['body']}" not in e["run_replies"])
        print(
            f"     of the unanswered: {len(stored)} stored; {taken} counted answered by a run of their thread "
            f"(its input_seq reaches them) that did not answer them (details in the JSON)"
        )
    c = cb["callback_ms"]
    print(
        f"  3. status callbacks: {cb['callbacks']} 'delivered' at {cb['callbacks_per_s']:.0f}/s "
        f"(p50 {c.get('p50', 0):.1f}  p99 {c.get('p99', 0):.1f} ms), errors {cb['errors'] or 'none'}"
    )
    print(f"     outbound messages by status: {cb['outbound_by_status']}; all DELIVERED: {cb['all_delivered']}")
    print(f"     inbound messages by status: {cb['inbound_by_status']}; runs: {measured['runs_by_status']}")
    for name, lines in problems.items():
        if lines:
            print(f"  {name} log: {len(lines)} error line(s), first: {lines[0][:300]}")
    print(f"  whole bench {time.perf_counter() - began:.0f} s")

    consistent = (
        not lat["errors"]
        and not thr["webhook_errors"]
        and thr["unanswered"] == thr["answered_twice"] == thr["unexpected_replies"] == 0
        and thr["wrong_recipient"] == thr["reply_ids_sent_twice"] == thr["reply_ids_missing"] == 0
        and not cb["errors"]
        and cb["all_delivered"]
    )
    print(f"  consistent (every inbound answered once, no error, all delivered): {consistent}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"channels-{args.db}{'-split' if args.split else ''}-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "db": args.db,
                "split": args.split,
                "load_average": {"start": load_before, "end": load_after},
                "latency": {"webhook_ms": webhook, "inbound_to_reply_ms": to_reply, "errors": lat["errors"]},
                "throughput": thr,
                "callbacks": cb,
                "runs_by_status": measured["runs_by_status"],
                "log_problems": problems,
                "consistent": consistent,
            },
            indent=2,
        )
    )
    print(f"  written to {out}")
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
