"""Chaos on the plain-API run path: many clients at once on a few threads of a PROMPT agent, then checks.

    .venv/bin/python bench/runs_chaos.py --db postgres            # threadline serve: API and worker in one process
    .venv/bin/python bench/runs_chaos.py --db postgres --split    # threadline api + a separate threadline worker
    .venv/bin/python bench/runs_chaos.py --db sqlite

A private database, the OpenAI-compatible stand-in (tests/fakes) and a real server process, as bench/runs.py.
The agent's model echoes the end user's messages it has not answered yet (``echo: m12-ab | m13-cd``), after a
tool round (an HTTP tool on a tiny local server, or ``add_tag``) in ~30% of runs, streaming in 3 chunks with
0-50 ms between them. For ``--seconds`` (default 75) ``--clients`` (default 15) clients do at random, over
``--threads`` (default 30) threads: POST an end user's message (plain, ``wait=5``, or ``stream=true`` read to
the end), several at once to one thread (double texting), cancel a run seen queued or running, hand a thread
to an operator (PATCH active=false, an operator message, PATCH active=true), block and unblock it, and read
pages of messages and runs. Every request has a client timeout.

Checks at the end (from the database and the clients' records): no 5xx and no request timed out; per thread,
no two runs ``running`` at once (``started_at``/``finished_at``); every end-user message sent while its thread
was active and unblocked is echoed by exactly one visible AI reply, or covered by a cancelled or failed run
that left its trace (its error), never dropped; no message echoed twice; no visible AI reply stored while the
thread was handed over or blocked (those must be hidden with ``metadata.not_sent``); replies after a tool
round have well-formed ``tool_calls`` and ``iterations``; a ``wait`` answer whose run completed holds the
reply echoing its message; a stream ends with ``run.completed``/``failed``/``cancelled``; no dead job, no
run left unfinished, no error line in the logs. Summary on stdout, JSON in bench/results/ (git-ignored); exit
status 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import secrets
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, private_database
from tests.events.sse import frames
from tests.fakes.openai_server import OpenAIStandIn, ReceivedRequest, Reply, ToolCallReply
from tests.livesrv import free_port, live_server, server_log

from channels import problems_in, worker_process, workspace
from threadline.config import Settings
from threadline.db.engine import create_engine, create_sessionmaker
from threadline.models import Job, Message, Run, Thread
from threadline.models.enums import JobState

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = re.compile(r"\bm\d+-[0-9a-f]{4}\b")
TERMINAL = {"run.completed", "run.failed", "run.cancelled"}
CLIENT_TIMEOUT_S = 20.0
TOOL_SHARE = 0.3


# ---------------------------------------------------------------------------------------------------- stand-ins


class Model:
    """What the stand-in answers: a tool call first in ~30% of runs, else (and after the tool's result) the
    echo of the end user's messages since the last assistant message the model sees."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.tool_rounds = 0

    def __call__(self, request: ReceivedRequest) -> Reply:
        with self.lock:
            delay = self.rng.uniform(0, 0.05)
            chunk_delay = self.rng.uniform(0, 0.05)
            tool = self.rng.random() < TOOL_SHARE
            which = self.rng.choice(("lookup", "add_tag"))
        messages = request.messages
        last = messages[-1] if messages else {}
        if last.get("role") == "user" and tool and request.tools:
            with self.lock:
                self.tool_rounds += 1
            call = (
                ToolCallReply("lookup", json.dumps({"order": "A1"}))
                if which == "lookup"
                else ToolCallReply("add_tag", json.dumps({"name": "chaos"}))
            )
            return Reply(tool_calls=[call], delay_s=delay, chunk_delay_s=chunk_delay)
        # Every end user's message it sees that no assistant message it sees has echoed yet, wherever they
        # stand: so a message is echoed twice only if a run did not see the first echo, and never dropped
        # for standing before an earlier run's reply (the interleavings are counted apart, from the database).
        asked: list[str] = []
        echoed: set[str] = set()
        for m in messages:
            found = TOKEN.findall(str(m.get("content") or ""))
            if m.get("role") == "user":
                asked += found
            elif m.get("role") == "assistant":
                echoed.update(found)
        tokens = [t for t in asked if t not in echoed]
        return Reply(text="echo: " + " | ".join(tokens), chunks=3, delay_s=delay, chunk_delay_s=chunk_delay)


@contextmanager
def tool_server() -> Iterator[str]:
    """The business's API that the agent's HTTP tool calls: answers after 0-20 ms."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(random.uniform(0, 0.02))
            payload = b'{"status": "shipped"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/orders/status"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------------- the chaos


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Sent:
    token: str
    thread: str
    mode: str  # plain, wait, stream, double
    before: datetime
    after: datetime | None = None
    status: int | None = None
    run: dict[str, Any] | None = None
    replies: list[dict[str, Any]] | None = None
    events: list[str] = field(default_factory=list)
    stream_replies: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Window:
    """A handoff or a block: ``outer`` from sending the first PATCH to the answer to the second (messages
    sent in it are exempt), ``inner`` from the answer to the first to the sending of the second (no visible
    AI reply may be stored in it)."""

    thread: str
    kind: str
    start_sent: datetime
    start_done: datetime | None = None
    end_sent: datetime | None = None
    end_done: datetime | None = None


class Chaos:
    def __init__(self, base: str, key: str, threads: list[str], operator: str, args: Any) -> None:
        self.base = base
        self.auth = {"Authorization": f"Bearer {key}"}
        self.threads = threads
        self.operator = operator
        self.rng = random.Random(args.seed)
        self.seconds = args.seconds
        self.clients = args.clients
        self.sent: list[Sent] = []
        self.windows: list[Window] = []
        self.busy: set[str] = set()  # threads in a handoff or a block
        self.runs_seen: list[str] = []
        self.statuses: Counter[str] = Counter()
        self.server_errors: list[dict[str, Any]] = []
        self.timeouts: list[dict[str, Any]] = []
        self.other: Counter[str] = Counter()
        self.counter = 0
        self.tasks: list[asyncio.Task[None]] = []

    def token(self) -> str:
        self.counter += 1
        return f"m{self.counter}-{secrets.token_hex(2)}"

    def record(self, what: str, r: httpx.Response) -> None:
        self.statuses[f"{what} {r.status_code}"] += 1
        if r.status_code >= 500:
            self.server_errors.append({"what": what, "status": r.status_code, "at": str(now()), "body": r.text[:300]})

    async def request(
        self, api: httpx.AsyncClient, what: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        try:
            r = await api.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            self.timeouts.append({"what": what, "url": url, "at": str(now()), "error": type(exc).__name__})
            return None
        except httpx.TransportError as exc:
            self.other[f"{what} {type(exc).__name__}"] += 1
            return None
        self.record(what, r)
        return r

    # ------------------------------------------------------------------------------------------- actions

    async def post(self, api: httpx.AsyncClient, thread: str, mode: str) -> None:
        s = Sent(self.token(), thread, mode, now())
        self.sent.append(s)
        body = {"content": f"hello {s.token}"}
        url = f"/v1/threads/{thread}/messages"
        if mode == "stream":
            try:
                async with api.stream("POST", url, params={"stream": "true"}, json=body) as response:
                    s.status = response.status_code
                    self.statuses[f"post stream {response.status_code}"] += 1
                    if response.status_code >= 500:
                        self.server_errors.append({"what": "post stream", "status": response.status_code})
                    async for f in frames(response):
                        if f.event:
                            s.events.append(f.event)
                            if f.event == "message.created":
                                data = f.json
                                if data.get("role") == "assistant":
                                    s.stream_replies.append(str(data.get("content")))
                            if f.event.startswith("run.") and s.run is None:
                                s.run = f.json
            except httpx.TimeoutException as exc:
                s.error = type(exc).__name__
                self.timeouts.append({"what": "post stream", "token": s.token, "at": str(now())})
            except httpx.TransportError as exc:
                s.error = type(exc).__name__
                self.other[f"post stream {s.error}"] += 1
            s.after = now()
            return
        params = {"wait": "5"} if mode == "wait" else None
        r = await self.request(api, f"post {mode}", "POST", url, params=params, json=body)
        s.after = now()
        if r is None:
            s.error = "transport"
            return
        s.status = r.status_code
        if r.status_code == 201:
            data = r.json()
            s.run = data.get("run")
            s.replies = data.get("replies")
            if s.run and s.run.get("status") in ("queued", "running"):
                self.runs_seen.append(s.run["id"])

    async def double(self, api: httpx.AsyncClient, thread: str) -> None:
        modes = [self.rng.choice(("plain", "wait", "stream")) for _ in range(self.rng.randint(2, 4))]
        await asyncio.gather(*(self.post(api, thread, m) for m in modes))

    async def cancel(self, api: httpx.AsyncClient) -> None:
        if not self.runs_seen:
            return
        run = self.rng.choice(self.runs_seen[-20:])
        await self.request(api, "cancel", "POST", f"/v1/runs/{run}/cancel")

    async def handoff(self, api: httpx.AsyncClient, thread: str, kind: str) -> None:
        w = Window(thread, kind, now())
        self.windows.append(w)
        try:
            field_on = {"active": False} if kind == "handoff" else {"blocked": True}
            field_off = {"active": True} if kind == "handoff" else {"blocked": False}
            r = await self.request(api, f"{kind} start", "PATCH", f"/v1/threads/{thread}", json=field_on)
            w.start_done = now()
            if r is None or r.status_code != 200:
                return
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))
            if kind == "handoff":
                await self.request(
                    api,
                    "operator message",
                    "POST",
                    f"/v1/threads/{thread}/messages",
                    json={"role": "assistant", "user_id": self.operator, "content": "operator here"},
                )
            await asyncio.sleep(self.rng.uniform(0.3, 2.0))
            w.end_sent = now()
            while True:  # the window must close whatever happens, or the thread stays out of the checks
                r = await self.request(api, f"{kind} end", "PATCH", f"/v1/threads/{thread}", json=field_off)
                if r is not None and r.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            w.end_done = now()
        finally:
            self.busy.discard(thread)

    async def read(self, api: httpx.AsyncClient, thread: str) -> None:
        r = await self.request(api, "list messages", "GET", f"/v1/threads/{thread}/messages", params={"limit": 10})
        if r is not None and r.status_code == 200 and r.json().get("has_more"):
            last = r.json()["data"][-1]["id"]
            await self.request(
                api, "list messages", "GET", f"/v1/threads/{thread}/messages", params={"limit": 10, "after": last}
            )
        await self.request(api, "list runs", "GET", f"/v1/threads/{thread}/runs", params={"limit": 10})

    async def client(self, deadline: float) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=self.auth, timeout=CLIENT_TIMEOUT_S) as api:
            while time.monotonic() < deadline:
                thread = self.rng.choice(self.threads)
                roll = self.rng.random()
                if roll < 0.25:
                    await self.post(api, thread, "plain")
                elif roll < 0.42:
                    await self.post(api, thread, "wait")
                elif roll < 0.57:
                    await self.post(api, thread, "stream")
                elif roll < 0.67:
                    await self.double(api, thread)
                elif roll < 0.77:
                    await self.cancel(api)
                elif roll < 0.82:
                    if thread not in self.busy:
                        self.busy.add(thread)
                        kind = "handoff" if self.rng.random() < 0.65 else "block"
                        self.tasks.append(asyncio.create_task(self.handoff(api, thread, kind)))
                else:
                    await self.read(api, thread)
                await asyncio.sleep(self.rng.uniform(0, 0.05))
            await asyncio.gather(*self.tasks)

    async def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        await asyncio.gather(*(self.client(deadline) for _ in range(self.clients)))


# ---------------------------------------------------------------------------------------------------- checks


async def settle(maker: Any, within_s: float = 60.0) -> int:
    """Waits until no run is queued or running; returns how many still are."""
    deadline = time.monotonic() + within_s
    while True:
        async with maker() as s:
            n = len((await s.execute(select(Run.id).where(Run.status.in_(("queued", "running"))))).all())
        if n == 0 or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.5)


async def checks(url: str, chaos: Chaos) -> dict[str, Any]:
    engine = create_engine(Settings(database_url=url))
    maker = create_sessionmaker(engine, Settings())
    unfinished = await settle(maker)
    await asyncio.sleep(0.5)
    async with maker() as s:
        threads = {t.id: str(t.public_id) for t in (await s.execute(select(Thread))).scalars()}
        runs = (await s.execute(select(Run).order_by(Run.id))).scalars().all()
        messages = (await s.execute(select(Message).order_by(Message.thread_id, Message.seq))).scalars().all()
        dead = (await s.execute(select(Job).where(Job.state == JobState.DEAD))).scalars().all()
        dead_jobs = [{"id": j.id, "kind": j.kind, "error": str(getattr(j, "last_error", ""))[:300]} for j in dead]
    await engine.dispose()
    runs_by_id = {r.id: r for r in runs}
    by_status = Counter(str(r.status) for r in runs)

    # Runs never overlapped as running, per thread.
    overlapping = []
    per_thread: dict[int, list[Run]] = defaultdict(list)
    for r in runs:
        if r.started_at is not None:
            per_thread[r.thread_id].append(r)
    for tid, rs in per_thread.items():
        rs.sort(key=lambda r: r.started_at)  # type: ignore[arg-type, return-value]
        for a, b in itertools.pairwise(rs):
            if a.finished_at is None or b.started_at < a.finished_at:  # type: ignore[operator]
                overlapping.append(
                    {
                        "thread": threads[tid],
                        "runs": [str(a.public_id), str(b.public_id)],
                        "first": [str(a.status), str(a.started_at), str(a.finished_at)],
                        "second": [str(b.status), str(b.started_at), str(b.finished_at)],
                        # born running by the POST that queued it (runs.service.request_run): started_at is
                        # the POST's clock reading, taken before it waited for the thread's row lock
                        "second_born_running": b.started_at == b.created_at,
                        "overlap_ms": round(
                            ((a.finished_at or now()) - b.started_at).total_seconds() * 1000,  # type: ignore[operator]
                            1,
                        ),
                    }
                )

    # The agent's replies: visible ones echo; hidden ones must say not_sent.
    visible: dict[str, list[Message]] = defaultdict(list)  # token -> visible AI replies echoing it
    hidden_tokens: Counter[str] = Counter()
    hidden_without_flag = []
    malformed = []
    ai_replies = 0
    windows_by_thread: dict[str, list[Window]] = defaultdict(list)
    for w in chaos.windows:
        windows_by_thread[w.thread].append(w)
    replies_in_window = []
    for m in messages:
        if str(m.sent_by) != "agent" or str(m.role) not in ("assistant", "hidden"):
            continue
        ai_replies += 1
        tokens = TOKEN.findall(m.content or "")
        if str(m.role) == "hidden":
            hidden_tokens.update(tokens)
            if not (m.metadata_ or {}).get("not_sent"):
                hidden_without_flag.append({"message": str(m.public_id), "metadata": m.metadata_})
        else:
            for t in tokens:
                visible[t].append(m)
            for w in windows_by_thread.get(threads[m.thread_id], []):
                if w.start_done is not None and w.start_done < m.created_at < (w.end_sent or now()):
                    replies_in_window.append(
                        {
                            "message": str(m.public_id),
                            "thread": threads[m.thread_id],
                            "created_at": str(m.created_at),
                            "window": w.kind,
                            "from": str(w.start_done),
                            "to": str(w.end_sent),
                            "run": str(runs_by_id[m.run_id].public_id) if m.run_id in runs_by_id else None,
                        }
                    )
        problem = tool_problem(m)
        if problem:
            malformed.append({"message": str(m.public_id), "problem": problem})

    # Every message sent while its thread was active and unblocked: answered once, or covered by a trace.
    stored = {t: m for m in messages if str(m.role) == "user" for t in TOKEN.findall(m.content or "")}
    dropped, twice, covered, exempt, answered = [], [], 0, 0, 0
    for sent in chaos.sent:
        if sent.status != 201:
            continue
        echoes = visible.get(sent.token, [])
        if len(echoes) > 1:
            twice.append(
                {
                    "token": sent.token,
                    "thread": sent.thread,
                    "seq": stored[sent.token].seq if sent.token in stored else None,
                    "replies": [
                        {
                            "id": str(e.public_id),
                            "seq": e.seq,
                            "created": str(e.created_at),
                            "run": str(runs_by_id[e.run_id].public_id) if e.run_id in runs_by_id else None,
                            "run_input_seq": runs_by_id[e.run_id].input_seq if e.run_id in runs_by_id else None,
                        }
                        for e in echoes
                    ],
                }
            )
        if in_window(sent, windows_by_thread):
            exempt += 1
            continue
        if len(echoes) >= 1:
            answered += 1
            continue
        m = stored.get(sent.token)
        trace = [
            r
            for r in runs
            if m is not None
            and r.thread_id == m.thread_id
            and r.input_seq >= m.seq
            and str(r.status) in ("cancelled", "failed")
            and r.error_code
        ]
        if trace:
            covered += 1
            continue
        dropped.append(
            {
                "token": sent.token,
                "thread": sent.thread,
                "mode": sent.mode,
                "sent": str(sent.before),
                "answered": str(sent.after),
                "seq": m.seq if m else None,
                "run": sent.run and {k: sent.run.get(k) for k in ("id", "status")},
                "hidden_echoes": hidden_tokens.get(sent.token, 0),
                "thread_runs": [
                    {
                        "id": str(r.public_id),
                        "status": str(r.status),
                        "input_seq": r.input_seq,
                        "error": r.error_code,
                        "created": str(r.created_at),
                        "started": str(r.started_at),
                        "finished": str(r.finished_at),
                    }
                    for r in runs
                    if m is not None
                    and r.thread_id == m.thread_id
                    and abs(r.created_at - m.created_at) < timedelta(seconds=5)
                ],
            }
        )

    # Observations, not invariants of the docs: created_at going back in seq order, and a user message that
    # stands before a reply that does not answer it (seq between the run's input_seq and its reply).
    inversions = []
    prev: Message | None = None
    for m in messages:
        if prev is not None and prev.thread_id == m.thread_id and m.created_at < prev.created_at:
            inversions.append(
                {
                    "thread": threads[m.thread_id],
                    "seq": [prev.seq, m.seq],
                    "created": [str(prev.created_at), str(m.created_at)],
                    "back_ms": round((prev.created_at - m.created_at).total_seconds() * 1000, 1),
                }
            )
        prev = m
    user_seqs: dict[int, list[int]] = defaultdict(list)
    for m in messages:
        if str(m.role) == "user":
            user_seqs[m.thread_id].append(m.seq)
    interleaved = 0
    for m in messages:
        if str(m.sent_by) == "agent" and str(m.role) == "assistant" and m.run_id in runs_by_id:
            r = runs_by_id[m.run_id]
            interleaved += sum(1 for q in user_seqs[m.thread_id] if r.input_seq < q < m.seq)

    # What the waiting and streaming clients got.
    bad_waits, bad_streams = [], []
    for sent in chaos.sent:
        if sent.status != 201:
            continue
        if sent.mode == "wait" and sent.run and sent.run.get("status") == "completed":
            if not any(sent.token in str(r.get("content")) for r in sent.replies or []):
                bad_waits.append({"token": sent.token, "run": sent.run.get("id"), "replies": sent.replies})
        if sent.mode == "stream" and not TERMINAL & set(sent.events) and not in_window(sent, windows_by_thread):
            bad_streams.append(
                {"token": sent.token, "sent": str(sent.before), "events": sent.events, "error": sent.error}
            )
    return {
        "runs_by_status": dict(by_status),
        "runs_unfinished": unfinished,
        "ai_replies": ai_replies,
        "hidden_replies": sum(1 for m in messages if str(m.sent_by) == "agent" and str(m.role) == "hidden"),
        "answered": answered,
        "covered_by_trace": covered,
        "exempt_in_window": exempt,
        "created_at_inversions": inversions,
        "user_messages_before_a_reply_not_answering_them": interleaved,
        "violations": {
            "overlapping_runs": overlapping,
            "dropped": dropped,
            "answered_twice": twice,
            "ai_reply_in_window": replies_in_window,
            "hidden_without_not_sent": hidden_without_flag,
            "malformed_tool_rounds": malformed,
            "bad_wait_answers": bad_waits,
            "streams_without_end": bad_streams,
            "dead_jobs": dead_jobs,
            "server_errors": chaos.server_errors,
            "timeouts": chaos.timeouts,
        },
    }


def in_window(sent: Sent, windows: dict[str, list[Window]]) -> bool:
    """Whether the message was sent while a handoff or block of its thread was under way (its POST and the
    window overlap in time)."""
    return any(
        w.start_sent <= (sent.after or now()) and sent.before <= (w.end_done or now())
        for w in windows.get(sent.thread, [])
    )


def tool_problem(m: Message) -> str | None:
    """What is wrong with a reply's ``tool_calls`` and ``iterations``, if anything."""
    its = m.iterations or []
    calls = m.tool_calls or []
    if not its:
        return "no iterations"
    if calls:
        ids = {c.get("id") for c in calls}
        for c in calls:
            if not {"id", "name", "arguments", "duration_ms"} <= set(c) or ("result" in c) == ("error" in c):
                return f"tool call {c}"
        if len(its) < 2 or set(its[0].get("tool_calls") or []) != ids:
            return f"iterations {its}"
        if its[0].get("finish_reason") != "tool_calls" or its[-1].get("finish_reason") != "stop":
            return f"finish reasons {[i.get('finish_reason') for i in its]}"
    elif len(its) != 1 and str(m.role) != "hidden":
        return f"{len(its)} iterations without tool calls"
    return None


# ---------------------------------------------------------------------------------------------------- main


async def setup(base: str, key: str, tool_url: str, n: int) -> tuple[list[str], str]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        lookup = {
            "type": "http",
            "name": "lookup",
            "description": "Look up an order.",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
            "url": tool_url,
            "headers": {"Authorization": "Bearer shop-key"},
            "timeout_s": 5,
        }
        version = {
            "mode": "PROMPT",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "tools": [lookup, {"type": "add_tag"}],
        }
        r = await api.post("/v1/agents", json={"name": "chaos", "version": version})
        r.raise_for_status()
        agent = r.json()["id"]
        user = (await api.post("/v1/end_users", json={"display_name": "chaos"})).json()["id"]
        threads = []
        for _ in range(n):
            r = await api.post("/v1/threads", json={"agent_id": agent, "end_user_id": user})
            r.raise_for_status()
            threads.append(r.json()["id"])
        r = await api.post("/v1/users", json={"email": f"op-{uuid.uuid4().hex[:8]}@example.com"})
        r.raise_for_status()
        return threads, r.json()["id"]


async def bench(base: str, key: str, url: str, tool_url: str, args: Any) -> tuple[Chaos, dict[str, Any]]:
    threads, operator = await setup(base, key, tool_url, args.threads)
    chaos = Chaos(base, key, threads, operator, args)
    log(f"chaos: {args.clients} clients on {args.threads} threads for {args.seconds} s")
    await chaos.run()
    log(f"{len(chaos.sent)} messages posted; waiting for the runs to end")
    return chaos, await checks(url, chaos)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="sqlite")
    parser.add_argument("--split", action="store_true", help="an API process and a separate worker process")
    parser.add_argument("--seconds", type=float, default=75)
    parser.add_argument("--clients", type=int, default=15)
    parser.add_argument("--threads", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    model = Model(args.seed)
    with OpenAIStandIn() as llm, tool_server() as tool_url, private_database(args.db) as url:
        llm.default = model
        key = asyncio.run(workspace(url))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "THREADLINE_OPENAI_BASE_URL": llm.base_url,
            "THREADLINE_OPENAI_API_KEY": "sk-bench",
            "THREADLINE_TOOLS_ALLOW_PRIVATE_URLS": "true",
            "THREADLINE_SECRET_KEYS": Fernet.generate_key().decode(),
        }
        worker_log: Path | None = None
        with ExitStack() as stack:
            if args.split:
                worker_log = stack.enter_context(worker_process(url, env))
            workers = "false" if args.split else "true"
            stack.enter_context(live_server(url, port=port, THREADLINE_RUN_WORKERS=workers, **env))
            chaos, result = asyncio.run(bench(base, key, url, tool_url, args))
            logs = {"server": server_log(base)}
            if worker_log is not None:
                logs["worker"] = worker_log.read_text(errors="replace")
    problems = {name: problems_in(text) for name, text in logs.items()}
    v = result["violations"]
    mode = "api + worker processes" if args.split else "one process (serve)"
    modes = Counter(s.mode for s in chaos.sent)
    print(f"\nthreadline runs chaos -- {args.db}, {mode}, seed {args.seed}")
    print(f"  messages posted: {len(chaos.sent)} ({dict(modes)}); tool rounds asked: {model.tool_rounds}")
    kinds = Counter(w.kind for w in chaos.windows)
    print(f"  handoffs {kinds['handoff']}, blocks {kinds['block']}")
    print(f"  requests: {dict(sorted(chaos.statuses.items()))}")
    if chaos.other:
        print(f"  transport errors: {dict(chaos.other)}")
    print(f"  runs: {result['runs_by_status']}, unfinished at the end {result['runs_unfinished']}")
    print(
        f"  AI replies {result['ai_replies']} (hidden {result['hidden_replies']}); messages answered once "
        f"{result['answered']}, covered by a cancelled/failed run {result['covered_by_trace']}, "
        f"sent during a handoff/block {result['exempt_in_window']}"
    )
    inv = result["created_at_inversions"]
    print(
        f"  observations: messages whose created_at is earlier than the previous seq's {len(inv)}"
        f" (max {max((i['back_ms'] for i in inv), default=0)} ms); user messages standing before a reply"
        f" that does not answer them {result['user_messages_before_a_reply_not_answering_them']}"
    )
    bad = False
    for name, items in v.items():
        print(f"  {name}: {len(items)}")
        for item in items[:5]:
            print(f"      {json.dumps(item, default=str)[:1500]}")
        bad = bad or bool(items)
    for name, lines in problems.items():
        print(f"  error lines in the {name} log: {len(lines)}")
        for line in lines[:5]:
            print(f"      {line[:400]}")
        bad = bad or bool(lines)
    bad = bad or bool(result["runs_unfinished"])
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"runs-chaos-{args.db}{'-split' if args.split else ''}-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "db": args.db,
                "split": args.split,
                "seed": args.seed,
                "seconds": args.seconds,
                "clients": args.clients,
                "threads": args.threads,
                "messages": len(chaos.sent),
                "modes": dict(modes),
                "requests": dict(chaos.statuses),
                "windows": [w.__dict__ for w in chaos.windows],
                "log_problems": problems,
                **result,
            },
            indent=2,
            default=str,
        )
    )
    print(f"  {'VIOLATIONS' if bad else 'consistent'}; written to {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
