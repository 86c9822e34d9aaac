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
import hashlib
import hmac
import json
import os
import random
import secrets
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
from tests.fakes import whatsapp_server as wa
from tests.fakes.twilio_server import Accept, Drop, ReceivedRequest, TwilioError, TwilioStandIn
from tests.livesrv import free_port, live_server, server_log

from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.models import EndUser, Integration, Job, Message, Run, Thread
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

    def __init__(self, channel: str = "sms") -> None:
        self.channel = channel
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Received]]] = {}
        # --chaos: while ``chaos`` is on, a random ~20% of sends fail transiently and ~3% lose their
        # connection; every attempt's fate is kept by message id, in order.
        self.chaos = False
        self.attempts: dict[str | None, list[str]] = {}
        self.dropped_bodies: set[str] = set()  # replies whose send lost its connection: FAILED, by design
        self._random = random.Random()

    def _parse(self, request: ReceivedRequest) -> Received | None:
        at = time.perf_counter()
        if self.channel == "sms":
            form = request.form
            callback = form.get("StatusCallback") or ""
            tags = parse_qs(urlsplit(callback).query).get("message")
            return Received(at, form.get("To", ""), form.get("Body", ""), tags[0] if tags else None)
        body = request.json
        if not isinstance(body, dict) or "status" in body:  # a read receipt, not a message of ours
            return None
        text = (body.get("text") or {}).get("body", "") if isinstance(body.get("text"), dict) else ""
        to = "+" + str(body.get("to", "")).lstrip("+")
        return Received(at, to, text, body.get("biz_opaque_callback_data"))

    def _fate(self) -> str:
        if not self.chaos:
            return "accepted"
        draw = self._random.random()
        if draw < 0.03:
            return "dropped"
        if draw < 0.13:
            return "unavailable"
        if draw < 0.23:
            return "rate_limited"
        return "accepted"

    def __call__(self, request: ReceivedRequest) -> Any:
        got = self._parse(request)
        if got is None:
            return wa.Accept()
        fate = self._fate()
        with self._lock:
            self.attempts.setdefault(got.message_id, []).append(fate)
            if fate == "dropped":
                self.dropped_bodies.add(got.body)
            if fate == "accepted":
                self.received.append(got)
                waiter = self._waiting.pop(got.body, None)
            else:
                waiter = None
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_resolve, future, got)
        sms = self.channel == "sms"
        if fate == "dropped":
            return Drop()
        if fate == "unavailable":
            return TwilioError.unavailable(retry_after=0) if sms else wa.GraphError.unavailable()
        if fate == "rate_limited":
            return TwilioError.rate_limited(retry_after=0) if sms else wa.GraphError.rate_limited(retry_after=0)
        return Accept() if sms else wa.Accept()

    def attempts_snapshot(self) -> dict[str | None, list[str]]:
        with self._lock:
            return {k: list(v) for k, v in self.attempts.items()}

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
        self.url = self.sms_url
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

    def ok(self, r: httpx.Response) -> bool:
        return r.status_code == 200 and r.text == EMPTY_TWIML

    def status_report(self, provider: Any, sent: dict[str, Any], status: str) -> tuple[str, Any, dict[str, str]]:
        """What Twilio POSTs to the message's StatusCallback when it moves to ``status``."""
        url, params = provider.status_callback(sent["sid"], status)
        assert url is not None, "a reply was sent without a StatusCallback"
        return url, params, self.signed(url, params)


class WhatsAppLine:
    """The whatsapp integration as Meta knows it: where it posts notifications, and the app secret it signs
    their raw bodies with (HMAC-SHA256, ``X-Hub-Signature-256``)."""

    def __init__(self, base: str, integration_id: str, app_secret: str, whatsapp: wa.WhatsAppStandIn) -> None:
        self.id = integration_id
        self.url = f"{base}/channels/whatsapp/{integration_id}/webhook"
        self.app_secret = app_secret
        self.whatsapp = whatsapp

    def notification(self, messages: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
        """One notification carrying ``messages`` (sender wa_id, text), each with its contact, signed."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.whatsapp.display_phone_number,
                "phone_number_id": self.whatsapp.phone_number_id,
            },
            "contacts": [{"profile": {"name": f"Sender {frm[-4:]}"}, "wa_id": frm.lstrip("+")} for frm, _ in messages],
            "messages": [
                {
                    "from": frm.lstrip("+"),
                    "id": "wamid.HBgL" + secrets.token_urlsafe(30),
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
                for frm, text in messages
            ],
        }
        change = {"value": value, "field": "messages"}
        entry = {"id": self.whatsapp.business_account_id, "changes": [change]}
        return self.signed_body({"object": "whatsapp_business_account", "entry": [entry]})

    def signed_body(self, document: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(document).encode()
        digest = hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
        return body, {"content-type": "application/json", "x-hub-signature-256": f"sha256={digest}"}

    def inbound(self, frm: str, body: str) -> tuple[bytes, dict[str, str]]:
        return self.notification([(frm, body)])

    def ok(self, r: httpx.Response) -> bool:
        return r.status_code == 200

    def status_report(self, provider: Any, sent: dict[str, Any], status: str) -> tuple[str, Any, dict[str, str]]:
        """The notification Meta POSTs when the message moves to ``status``."""
        body, headers = self.signed_body(provider.status_notification(sent["id"], status))
        return self.url, body, headers


AnyLine = Line | WhatsAppLine


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
    maker = create_sessionmaker(write_engine(engine), Settings())
    async with maker() as s, s.begin():
        ws = await create_workspace(s, name="bench")
        _, key = await create_key(s, workspace_id=ws.id, scopes=(Scope.ADMIN,), name="bench", actor=Actor.system())
    await engine.dispose()
    return key


async def agent_and_line(base: str, key: str, provider: Any) -> AnyLine:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        r = await api.post(
            "/v1/agents",
            json={"name": "echo", "type": "TEXT", "version": {"mode": "FLOW", "provider": "flow", "flow": ECHO_FLOW}},
        )
        r.raise_for_status()
        agent = r.json()["id"]
        if isinstance(provider, wa.WhatsAppStandIn):
            app_secret = secrets.token_hex(16)
            r = await api.post(
                "/v1/integrations",
                json={
                    "type": "whatsapp",
                    "name": "bench line",
                    "agent_id": agent,
                    "settings": {
                        "phone_number_id": provider.phone_number_id,
                        "business_account_id": provider.business_account_id,
                        "api_base_url": provider.base_url,
                    },
                    "secrets": {
                        "access_token": provider.access_token,
                        "app_secret": app_secret,
                        "verify_token": secrets.token_urlsafe(16),
                    },
                },
            )
            r.raise_for_status()
            return WhatsAppLine(base, r.json()["id"], app_secret, provider)
        twilio: TwilioStandIn = provider
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
        self.maker = create_sessionmaker(self.engine, Settings())
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

    async def threads(self) -> dict[str, str]:
        """The line's threads by their end user's address (``+digits``): public ids."""
        stmt = (
            select(EndUser.address, Thread.public_id)
            .join(EndUser, EndUser.id == Thread.end_user_id)
            .where(Thread.integration_id == self.integration)
        )
        async with self.maker() as s:
            return {"+" + str(a).lstrip("+"): str(t) for a, t in (await s.execute(stmt)).all()}

    async def inbound_counts(self, bodies: list[str]) -> Counter[str]:
        stmt = select(Message.content).where(
            Message.integration_id == self.integration,
            Message.direction == Direction.INBOUND,
            Message.content.in_(bodies),
        )
        async with self.maker() as s:
            return Counter(str(c) for (c,) in (await s.execute(stmt)).all())

    async def outbound(self) -> list[dict[str, Any]]:
        """Every outbound message of the line: public id, thread, seq, role, status, content."""
        stmt = select(
            Message.public_id,
            Message.thread_id,
            Message.seq,
            Message.role,
            Message.status,
            Message.content,
            Message.created_at,
        ).where(Message.integration_id == self.integration, Message.direction == Direction.OUTBOUND)
        async with self.maker() as s:
            rows = (await s.execute(stmt)).all()
        return [
            {"id": str(i), "thread": t, "seq": q, "role": str(r), "status": str(st), "content": c, "created": str(at)}
            for i, t, q, r, st, c, at in rows
        ]

    async def dead_jobs(self) -> list[dict[str, Any]]:
        async with self.maker() as s:
            rows = (await s.execute(select(Job).where(Job.state == JobState.DEAD))).scalars().all()
            return [{"id": j.id, "kind": j.kind, "last_error": str(getattr(j, "last_error", ""))[:300]} for j in rows]

    async def close(self) -> None:
        await self.engine.dispose()


# ---------------------------------------------------------------------------------------------------- chaos

LADDER = ("sent", "delivered", "read")
RUNG_STATUS = {"sent": "SENT", "delivered": "DELIVERED", "read": "READ"}
HANDOFF_SHARE = 0.1


class Chaos:
    """--chaos, during the throughput phase: the stand-in fails sends (``Replies.chaos``); a pump posts
    each message's status reports, as soon as the stand-in took it, in a random order with duplicates, by
    CONCURRENCY clients; and ~10% of threads are handed to an operator, who writes once and hands back."""

    def __init__(self, base: str, key: str, line: AnyLine, provider: Any, replies: Replies) -> None:
        self.base, self.key, self.line, self.provider, self.replies = base, key, line, provider, replies
        self.rng = random.Random()
        self.top: dict[str, str] = {}  # message public id -> the highest status reported
        self.reports: asyncio.Queue[tuple[str, Any, dict[str, str]]] = asyncio.Queue()
        self.report_errors = Counter[str]()
        self.reports_posted = 0
        self.handoffs: dict[str, dict[str, Any]] = {}  # thread public id -> to, off_at, on_at, errors
        self.api_errors = Counter[str]()
        self._seen: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self, threads: dict[str, str]) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=self.auth, timeout=30) as api:
            r = await api.post("/v1/users", json={"email": f"op-{uuid.uuid4().hex[:8]}@example.com"})
            r.raise_for_status()
            self.operator = r.json()["id"]
        senders = [sender(2, i) for i in range(THROUGHPUT_SENDERS)]
        chosen = self.rng.sample(senders, max(1, int(len(senders) * HANDOFF_SHARE)))
        self.replies.chaos = True
        self._client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY))
        self._tasks = [asyncio.create_task(self._pump())]
        self._tasks += [asyncio.create_task(self._post_reports()) for _ in range(CONCURRENCY)]
        self._tasks += [asyncio.create_task(self._handoff(threads[to], to)) for to in chosen if to in threads]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def _public_id(self, sent: dict[str, Any]) -> str | None:
        if isinstance(self.line, Line):
            url = self.provider._callbacks.get(sent["sid"]) or ""
            tags = parse_qs(urlsplit(url).query).get("message")
            return tags[0] if tags else None
        return sent.get("biz_opaque_callback_data")

    def _queue_new(self) -> None:
        for sent in self.provider.messages:
            key = sent.get("sid") or sent.get("id")
            if key in self._seen:
                continue
            self._seen.add(key)
            public_id = self._public_id(sent)
            rung = self.rng.choice((0, 1, 1, 2))
            statuses = list(LADDER[: rung + 1])
            statuses += [self.rng.choice(statuses) for _ in range(self.rng.randint(1, 2))]
            self.rng.shuffle(statuses)
            if public_id is not None:
                self.top[public_id] = LADDER[rung]
            for status in statuses:
                self.reports.put_nowait(self.line.status_report(self.provider, sent, status))

    async def _pump(self) -> None:
        while not self._stopping.is_set():
            self._queue_new()
            await asyncio.sleep(0.05)
        self._queue_new()

    async def _post_reports(self) -> None:
        while not (self._stopping.is_set() and self.reports.empty()):
            try:
                url, payload, headers = await asyncio.wait_for(self.reports.get(), 0.2)
            except TimeoutError:
                continue
            try:
                r = await post(self._client, url, payload, headers)
            except httpx.TransportError as exc:
                self.report_errors[type(exc).__name__] += 1
                continue
            self.reports_posted += 1
            if r.status_code != 200:
                self.report_errors[str(r.status_code)] += 1

    async def _handoff(self, thread: str, to: str) -> None:
        """PATCH active=false, an operator's message, PATCH active=true; the window is from the answer to
        the first PATCH to the sending of the second."""
        entry: dict[str, Any] = {"to": to}
        self.handoffs[thread] = entry
        await asyncio.sleep(self.rng.uniform(0.3, 2.5))
        async with httpx.AsyncClient(base_url=self.base, headers=self.auth, timeout=30) as api:
            r = await api.patch(f"/v1/threads/{thread}", json={"active": False})
            entry["off_at"] = time.perf_counter()
            entry["off_wall"] = str(datetime.now(UTC))
            self._count(r, "handoff")
            r = await api.post(
                f"/v1/threads/{thread}/messages",
                json={"role": "assistant", "user_id": self.operator, "content": f"operator on {to}"},
            )
            self._count(r, "operator message")
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))
            entry["on_at"] = time.perf_counter()
            entry["on_wall"] = str(datetime.now(UTC))
            r = await api.patch(f"/v1/threads/{thread}", json={"active": True})
            self._count(r, "hand back")

    def _count(self, r: httpx.Response, what: str) -> None:
        if r.status_code >= 300:
            self.api_errors[f"{what} {r.status_code}"] += 1

    async def stop(self) -> dict[str, Any]:
        """Ends the failures, lets the handoffs finish and the last reports go out; what happened."""
        await asyncio.gather(*self._tasks[1 + CONCURRENCY :])
        self.replies.chaos = False
        self._stopping.set()
        await asyncio.gather(*self._tasks[: 1 + CONCURRENCY])
        await self._client.aclose()
        return {
            "chaos_reports_posted": self.reports_posted,
            "chaos_report_errors": dict(self.report_errors),
            "chaos_api_errors": dict(self.api_errors),
            "chaos_handoffs": len(self.handoffs),
        }


async def chaos_checks(chaos: Chaos, replies: Replies, store: Store) -> dict[str, Any]:
    """The checks of --chaos, from the stand-in's record of attempts and the database."""
    await asyncio.sleep(1.0)  # the last jobs' transactions commit after their sends
    attempts = replies.attempts_snapshot()
    outbound = await store.outbound()
    delivered_roles = [m for m in outbound if m["role"] in ("assistant", "Role.ASSISTANT", "ASSISTANT")]
    roles = Counter(m["role"] for m in outbound)
    statuses = Counter((m["role"], m["status"]) for m in outbound)
    sent_twice = [i for i, a in attempts.items() if a.count("accepted") > 1]
    after_drop = [i for i, a in attempts.items() if "dropped" in a and a.index("dropped") < len(a) - 1]
    dropped = {i for i, a in attempts.items() if "dropped" in a}
    wrong_status = []
    for m in delivered_roles:
        a = attempts.get(m["id"], [])
        if m["id"] in chaos.top:
            want = RUNG_STATUS[chaos.top[m["id"]]]
        elif "accepted" in a:
            want = "SENT"
        elif a:
            want = "FAILED"
        else:
            continue  # never sent: reported below by status
        if m["status"] != want:
            wrong_status.append({**m, "want": want, "attempts": a})
    # Per thread, the order the stand-in took our messages in must be their seq order.
    seq_of = {m["id"]: (m["thread"], m["seq"]) for m in outbound}
    last: dict[int, int] = {}
    out_of_order = []
    for got in replies.snapshot():
        if got.message_id not in seq_of:
            continue
        thread, seq = seq_of[got.message_id]
        if thread in last and last[thread] > seq:
            out_of_order.append({"thread": thread, "earlier_seq": last[thread], "then_seq": seq, "id": got.message_id})
        last[thread] = max(seq, last.get(thread, seq))
    # No AI reply to a handed thread's end user between the handoff and the hand back.
    during = []
    for thread, h in chaos.handoffs.items():
        if "off_at" not in h or "on_at" not in h:
            continue
        for got in replies.snapshot():
            if got.to == h["to"] and got.body.startswith("ok ") and h["off_at"] < got.at < h["on_at"]:
                stored = next((m for m in outbound if m["id"] == got.message_id), {})
                during.append(
                    {
                        "thread": thread,
                        "to": got.to,
                        "body": got.body,
                        "id": got.message_id,
                        "created": stored.get("created"),
                        "handoff": [h.get("off_wall"), h.get("on_wall")],
                        "attempts": attempts.get(got.message_id),
                        "ms_after_handoff": (got.at - h["off_at"]) * 1000,
                    }
                )
    return {
        "outbound_by_role_status": {f"{r}/{st}": n for (r, st), n in statuses.items()},
        "outbound_roles": dict(roles),
        "sends_attempted": sum(len(a) for a in attempts.values()),
        "attempt_fates": dict(Counter(f for a in attempts.values() for f in a)),
        "dropped": len(dropped),
        "sent_twice": sent_twice,
        "attempted_after_drop": after_drop,
        "wrong_final_status": wrong_status[:20],
        "wrong_final_status_count": len(wrong_status),
        "wrong_final_status_by": dict(Counter(f"{m['status']} want {m['want']}" for m in wrong_status)),
        "out_of_order": out_of_order[:20],
        "out_of_order_count": len(out_of_order),
        "ai_replies_during_handoff": during,
        "dead_jobs": await store.dead_jobs(),
        "open_jobs": await store.open_jobs(),
    }


# ---------------------------------------------------------------------------------------------------- phases


async def latency(base: str, line: AnyLine, replies: Replies, k: int) -> dict[str, Any]:
    """One inbound at a time; each waits for its own reply at the stand-in before the next goes."""
    webhook, to_reply, errors = [], [], Counter[str]()
    async with httpx.AsyncClient(base_url=base, timeout=30) as provider:
        for i in range(WARM_UP + k):
            to = sender(1, i % LATENCY_SENDERS)
            body = f"latency {i}"
            params, headers = line.inbound(to, body)
            reply = replies.expect(f"ok {body}")
            started = time.perf_counter()
            r = await post(provider, line.url, params, headers)
            answered = time.perf_counter()
            if not line.ok(r):
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
    ok: Callable[[httpx.Response], bool], items: list[tuple[str, Any, dict[str, str]]]
) -> tuple[list[float], Counter[str], float]:
    """POST every (url, form or raw body, headers) with CONCURRENCY clients on keep-alive connections; the
    latency of each answered request, the failures by status or exception, and the seconds it took."""
    queue: asyncio.Queue[tuple[str, Any, dict[str, str]]] = asyncio.Queue()
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
                    r = await post(provider, url, params, headers)
                except httpx.TransportError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                times.append((time.perf_counter() - t0) * 1000)
                if not ok(r):
                    errors[str(r.status_code)] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        return times, errors, time.perf_counter() - started


async def post(client: httpx.AsyncClient, url: str, payload: Any, headers: dict[str, str]) -> httpx.Response:
    """A form (Twilio) or a raw body (WhatsApp: signed over its exact bytes)."""
    if isinstance(payload, bytes):
        return await client.post(url, content=payload, headers=headers)
    return await client.post(url, data=payload, headers=headers)


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


async def throughput(
    line: AnyLine, replies: Replies, store: Store, n: int, chaos: Chaos | None = None
) -> dict[str, Any]:
    """First each of the 100 senders opens its conversation (one message each, answered, not timed: a new
    conversation's first run answers the messages that started it with one reply, docs/flows.md). Then N
    messages, round robin over the senders, 20 at a time; then the wait until every one is answered, and
    the checks of what the stand-in got. On WhatsApp one notification carries 1 to 3 messages of different
    senders, and ~10% of notifications are delivered a second time later on. With ``chaos``, the provider
    fails sends meanwhile, status reports go out for what it took, and some threads are handed over."""
    openers = [(sender(2, i), f"hello {i}") for i in range(THROUGHPUT_SENDERS)]
    _, errors, _ = await post_all(line.ok, webhooks(line, openers, redeliver=False)[0])
    await settle(replies, store, replies.count() + THROUGHPUT_SENDERS - sum(errors.values()))

    pairs = [(sender(2, i % THROUGHPUT_SENDERS), f"load {i}") for i in range(n)]
    items, redelivered = webhooks(line, pairs, redeliver=True)
    before = replies.count()
    runs_before = sum((await store.runs()).values())
    if chaos is not None:
        await chaos.start(await store.threads())
    started = time.perf_counter()
    times, errors, posting = await post_all(line.ok, items)
    posted = started + posting
    await settle(replies, store, before + n)
    chaotic = await chaos.stop() if chaos is not None else {}
    got = [r for r in replies.snapshot()[before:] if r.body.startswith("ok ")]
    done = max((r.at for r in got), default=posted)

    # Every inbound answered once (the reply echoes its text), to its sender; no message id sent twice.
    sent_by = {body: to for to, body in pairs}
    echoed = Counter(r.body.removeprefix("ok ") for r in got)
    ids = Counter(r.message_id for r in got)
    await asyncio.sleep(0.5)  # the last runs' records commit just after their replies went out
    runs = sum((await store.runs()).values()) - runs_before
    handed = {chaos.handoffs[t]["to"] for t in chaos.handoffs} if chaos is not None else set()
    # A message of a thread a human took over may rightly stay unanswered: no run starts meanwhile, and a
    # run that was under way ends cancelled with its reply hidden.
    lost = {b.removeprefix("ok ") for b in replies.dropped_bodies}
    missing = [b for b in sent_by if echoed[b] == 0 and sent_by[b] not in handed and b not in lost]
    unanswered = await store.unanswered(missing)
    stored = await store.inbound_counts([body for _, body in pairs])
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
        "unanswered": len(missing),
        "unanswered_reply_dropped": sum(1 for b in sent_by if echoed[b] == 0 and b in lost),
        "unanswered_on_handed_threads": sum(1 for b in sent_by if echoed[b] == 0 and sent_by[b] in handed),
        "notifications": len(items),
        "redelivered": redelivered,
        "inbound_not_stored": sum(1 for body in sent_by if stored.get(body, 0) == 0),
        "inbound_stored_twice": sum(1 for body in sent_by if stored.get(body, 0) > 1),
        "unanswered_detail": unanswered,
        "answered_twice": sum(1 for body in sent_by if echoed[body] > 1),
        "unexpected_replies": sum(1 for body in echoed if body not in sent_by),
        "wrong_recipient": sum(1 for r in got if sent_by.get(r.body.removeprefix("ok ")) != r.to),
        "reply_ids_unique": len(ids),
        "reply_ids_sent_twice": sum(1 for v in ids.values() if v > 1),
        "reply_ids_missing": ids.get(None, 0),
        **chaotic,
    }


def webhooks(line: AnyLine, pairs: list[tuple[str, str]], *, redeliver: bool) -> tuple[list[Any], int]:
    """The signed POSTs that bring ``pairs`` (sender, text) in: one SMS each; on WhatsApp, notifications of
    1 to 3 consecutive pairs (different senders, round robin), ~10% of them posted again further on (a
    provider retrying). Returns the POSTs and how many are redeliveries."""
    if isinstance(line, Line):
        return [(line.url, *line.inbound(to, body)) for to, body in pairs], 0
    rng = random.Random()
    items: list[Any] = []
    i = 0
    while i < len(pairs):
        size = rng.choice((1, 2, 3))
        items.append((line.url, *line.notification(pairs[i : i + size])))
        i += size
    again = 0
    if redeliver:
        for item in list(items):
            if rng.random() < 0.1:
                position = rng.randint(min(len(items), items.index(item) + 1), len(items))
                items.insert(position, item)
                again += 1
    return items, again


async def callbacks(line: AnyLine, provider: Any, store: Store) -> dict[str, Any]:
    """The provider's ``delivered`` report for every message the stand-in took, 20 at a time; then every
    outbound message of the line is read back."""
    reports = [line.status_report(provider, sent, "delivered") for sent in provider.messages]
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


async def measure(base: str, key: str, url: str, provider: Any, replies: Replies, args: Any) -> dict[str, Any]:
    line = await agent_and_line(base, key, provider)
    store = Store(url, line.id)
    chaos = Chaos(base, key, line, provider, replies) if args.chaos else None
    try:
        log(f"latency: {WARM_UP} + {args.latency} inbound {args.channel} one at a time, {LATENCY_SENDERS} senders")
        lat = await latency(base, line, replies, args.latency)
        log(f"throughput: {args.messages} inbound, {THROUGHPUT_SENDERS} senders, {CONCURRENCY} concurrent")
        thr = await throughput(line, replies, store, args.messages, chaos)
        if chaos is not None:
            log("chaos checks")
            cb = await chaos_checks(chaos, replies, store)
        else:
            log(f"status callbacks: 'delivered' for the {len(provider.messages)} messages sent")
            cb = await callbacks(line, provider, store)
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
    parser.add_argument("--channel", choices=("sms", "whatsapp"), default="sms")
    parser.add_argument("--chaos", action="store_true", help="failing sends, shuffled reports, handoffs")
    args = parser.parse_args()
    load_before = os.getloadavg()
    began = time.perf_counter()
    replies = Replies(args.channel)
    stand_in: Any = TwilioStandIn() if args.channel == "sms" else wa.WhatsAppStandIn()
    with stand_in as twilio, private_database(args.db) as url:
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
        if args.chaos:  # quick retries of the failed sends (the default backoff starts at 5 s)
            env.update(THREADLINE_JOB_BACKOFF_BASE_S="0.1", THREADLINE_JOB_BACKOFF_CAP_S="0.5")
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
    what = "SMS" if args.channel == "sms" else "WhatsApp"
    print(f"\nthreadline {what} conversations -- {args.db}, {mode}{', chaos' if args.chaos else ''}")
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
    if args.channel == "whatsapp":
        print(
            f"     whatsapp: {thr['notifications']} notifications ({thr['redelivered']} redelivered); inbound "
            f"not stored {thr['inbound_not_stored']}, stored twice {thr['inbound_stored_twice']}"
        )
    if args.chaos:
        print(
            f"  3. chaos: sends {cb['attempt_fates']}; reports posted {thr['chaos_reports_posted']} "
            f"(errors {thr['chaos_report_errors'] or 'none'}); handoffs {thr['chaos_handoffs']} "
            f"(API errors {thr['chaos_api_errors'] or 'none'}), their threads' inbound left unanswered "
            f"{thr['unanswered_on_handed_threads']}"
        )
        print(
            f"     sent twice {len(cb['sent_twice'])}, attempted after a drop {len(cb['attempted_after_drop'])}, "
            f"wrong final status {cb['wrong_final_status_count']} {cb['wrong_final_status_by'] or ''}, "
            f"out of seq order {cb['out_of_order_count']}, AI replies during a handoff "
            f"{len(cb['ai_replies_during_handoff'])}, dead jobs {len(cb['dead_jobs'])}, open jobs {cb['open_jobs']}"
        )
        print(f"     outbound by role/status: {cb['outbound_by_role_status']}; runs: {measured['runs_by_status']}")
    else:
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
            for extra in lines[1:3]:
                print(f"     {extra[:300]}")
    print(f"  whole bench {time.perf_counter() - began:.0f} s")

    consistent = (
        not lat["errors"]
        and not thr["webhook_errors"]
        and thr["unanswered"] == thr["answered_twice"] == thr["unexpected_replies"] == 0
        and thr["wrong_recipient"] == thr["reply_ids_sent_twice"] == thr["reply_ids_missing"] == 0
        and thr.get("inbound_not_stored", 0) == thr.get("inbound_stored_twice", 0) == 0
    )
    if args.chaos:
        consistent = consistent and not (
            thr["chaos_report_errors"]
            or thr["chaos_api_errors"]
            or cb["sent_twice"]
            or cb["attempted_after_drop"]
            or cb["wrong_final_status_count"]
            or cb["out_of_order_count"]
            or cb["ai_replies_during_handoff"]
            or cb["dead_jobs"]
            or any(problems.values())
        )
    else:
        consistent = consistent and not cb["errors"] and cb["all_delivered"]
    print(f"  consistent (every inbound answered once, no error, all delivered): {consistent}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"channels-{args.db}{'-split' if args.split else ''}"
    name += ("-whatsapp" if args.channel == "whatsapp" else "") + ("-chaos" if args.chaos else "")
    out = RESULTS / f"{name}-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "db": args.db,
                "split": args.split,
                "channel": args.channel,
                "chaos": args.chaos,
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
