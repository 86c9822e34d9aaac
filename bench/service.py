"""threadline against a bare service (and LangGraph's Agent Server) on the same database, side by side (issue 16).

    .venv/bin/pip install -e '.[bench]' && apt-get install -y wrk         # once: orjson, granian; wrk
    .venv/bin/python bench/service.py                                     # all, both databases (~10 min when quiet)
    .venv/bin/python bench/service.py --db pg --only get,post --duration 5 # one scenario while optimising
    PYTHONPATH=/tmp/tl-<commit>/src .venv/bin/python bench/service.py ... # serve another commit (A/B), from
                                        # `git archive <commit> | tar -x -C /tmp/tl-<commit>`

For each database (PostgreSQL: a private ``threadline_bench_<random>`` on 127.0.0.1:5432, dropped at the end;
SQLite: a file in a temporary directory) it seeds a fixture through threadline's services and API, starts real
server processes on loopback ports and drives them with wrk (``-t2``, a Lua script per target that sends the
requests round robin), in interleaved rounds (every target once per round, the order rotating), the figure
being the median of the rounds. Per target: requests/s (2xx only; any other answer is counted and shown),
latency p50/p99, and CPU per request of the server's processes (utime + stime of the process and its children
from /proc/<pid>/stat, before and after) and, on PostgreSQL, of the PostgreSQL backends connected to the bench
database. Scenarios (``--only``, comma-separated):

* ``get``: the page of 100 messages through /v1 (``GET /v1/threads/{id}/messages?limit=100``, c32) against the
  bare baseline (bench/baseline.py: the same keyset page of the same rows, orjson), and the vendor mounts'
  page endpoints on the same thread (Aitronos, Feather, Altur, camelAI; ``--openai-mount`` adds the OpenAI
  mount's conversation items, not in the target) each against /v1. Targets: /v1 >= 0.7x the baseline, its CPU
  per request <= 1.5x; mounts >= 0.85x /v1.
* ``post``: ``POST`` one message to an inactive thread, spread round robin over 256 threads of one workspace,
  and over 64 workspaces (one thread and key each), at 1 and 32 connections, threadline against the baseline.
  Targets: >= 0.5x the baseline at 32; on PostgreSQL threadline's 1 -> 32 connections scaling >= 3x.
* ``healthz``: ``GET /healthz`` against the baseline's ``/healthz`` (a bare uvicorn endpoint). Target >= 0.8x.
* ``granian``: threadline's app factory (``threadline.app:create_app``) served by granian's CLI (``granian
  --interface asgi --factory --loop uvloop --workers 1``) against ``threadline api`` (uvicorn): GET page and
  healthz (c32).
* ``workers``: ``threadline api --workers 2`` against ``--workers 1`` (GET page and POST, c32); a "not
  available" line when the CLI has no ``--workers`` or refuses 2 (SQLite is served by one process).
* ``rss``: VmRSS of ``threadline serve`` after start, after creating 3 PROMPT agents, and the peak while wrk
  holds 64 connections on the page (sampled every 0.2 s). Targets: <= 120 MB, <= 120 MB, <= 150 MB.
* ``wait``: send and wait (``POST /v1/threads/{id}/messages?wait=10``) to a FLOW agent that answers at once
  (``threadline serve``), 16 connections over 64 threads, against LangGraph's Agent Server ``runs/wait``
  (``langgraph dev`` from a separate venv, ``--langgraph``; an ``echo`` graph with no model, 64 threads).
  Runs last at least 6 s (WAIT_MIN_S). Target >= 3x LangGraph. Then, on PostgreSQL, statements per exchange at
  1 and 16 connections (target <= 12 besides BEGIN/COMMIT; both counts are shown): a second ``threadline
  serve`` whose database URL points at bench/pgcount.py's counting proxy (it counts each Query and Execute the
  process sends, by verb and table; the idle rate, measured for 2 s before, is subtracted), with a fixed number
  of exchanges from an httpx client (so no exchange is cut off as wrk's are at the end of a run); transactions
  per exchange from ``pg_stat_database.xact_commit`` alongside.

threadline runs as ``threadline api`` (one process, no workers) for get/post/healthz, ``threadline serve`` for
rss and wait, with ``THREADLINE_LOG_LEVEL=warning`` and rate limits raised out of reach (the limiter still runs
on every request; its budget would otherwise turn the fast runs into 429s). The baseline runs on the same ASGI
server (uvicorn, one process, no access log). Results are printed, with the load average at each scenario, and
written to bench/results/service-<db>-<timestamp>.json. Exit status 1 if a server failed or a target answered
anything but 2xx; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import POSTGRES, log, private_database
from pgcount import StatementCounter
from tests.livesrv import free_port

BENCH = Path(__file__).resolve().parent

RESULTS = BENCH / "results"
SCENARIOS = ("get", "post", "healthz", "granian", "workers", "rss", "wait")
LANGGRAPH_DEFAULT = "/work/bench-venvs/langgraph"
PAGE = 100
SPREAD = 256  # threads of one workspace the POSTs go round
WORKSPACES = 64  # workspaces (one thread each) the other POSTs go round
WAIT_THREADS = 64
WAIT_MIN_S = 6.0  # a wrk run of send-and-wait lasts at least this: an exchange takes seconds at 16 connections today
PROMPT_AGENTS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
PARAGRAPH = (
    "Thanks for getting back to me. I tried the steps you sent yesterday, but the order page still shows the "
    "old delivery address. Could you check whether the change was saved on your side?"
)
# Every threadline process the bench starts. The rate limits stay on (their cost is part of every request) but
# out of reach: at the default 6000/minute per key a faster threadline would answer 429s, which are cheap.
SERVER_ENV = {
    "THREADLINE_AUTO_MIGRATE": "false",
    "THREADLINE_BOOTSTRAP": "false",
    "THREADLINE_LOG_LEVEL": "warning",
    "THREADLINE_RATE_LIMIT_PER_KEY": "1000000/minute",
    "THREADLINE_RATE_LIMIT_PER_ADDRESS": "1000000/minute",
}
ECHO_FLOW = {
    "version": 1,
    "description": "Answers every message at once with its text (the bench's instant agent).",
    "start": "reply",
    "nodes": {
        "reply": {"type": "send", "text": "echo: {{input.text}}", "next": "listen"},
        "listen": {"type": "ask", "next": "reply"},
    },
}
LANGGRAPH_ECHO = '''"""An echo graph with no model, for bench/service.py: answers the last message with its text."""
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages


class State(TypedDict):
    messages: Annotated[list, add_messages]


def echo(state: State) -> dict[str, Any]:
    return {"messages": [{"role": "assistant", "content": f"echo: {state['messages'][-1].content}"}]}


graph = StateGraph(State).add_node("echo", echo).add_edge(START, "echo").add_edge("echo", END).compile()
'''


def source() -> str:
    """Which threadline the servers run: the package's directory (PYTHONPATH=<export>/src serves another
    commit for an A/B run) and, in a git work tree, its commit and whether files differ from it."""
    import threadline

    where = Path(threadline.__file__).resolve().parent.parent.parent
    git = ["git", "-C", str(where)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return f"threadline from {where} (not a git work tree)"
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout
    changed = len(dirty.splitlines())
    return f"threadline from {where} at {head.stdout.strip()}" + (
        f" + {changed} changed files in src/" if changed else ""
    )


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------------------------- processes


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # fields after the command name: state, ppid, ...


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """Seconds of CPU (user + system) each process has used."""
    out = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def rss_mb(root: int) -> float:
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Server:
    """A server process on a loopback port, ready once ``health`` answers 200; stopped with SIGTERM."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, cwd: Path, health: str) -> None:
        self.name, self.cmd, self.port, self.health = name, cmd, port, health
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"{name.replace(' ', '_').replace('/', '_')}-{port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 60) -> Server:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(self.base + self.health, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {self.health} in {timeout:.0f} s: {self.tail()}")
            time.sleep(0.2)

    def tail(self, limit: int = 3000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-limit:]

    def cpu(self) -> dict[int, float]:
        return cpu_by_pid(process_tree(self.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@contextmanager
def running(server: Server, timeout: float = 60) -> Iterator[Server]:
    try:
        yield server.wait_ready(timeout)
    finally:
        server.stop()


def threadline_cmd(command: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "threadline.cli", command, "--host", "127.0.0.1", "--port", str(port),
        "--no-migrate", "--no-bootstrap", *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------- wrk


LUA = """
local reqs = {REQUESTS}
local nthreads = {THREADS}
local formatted = {{}}
local counter = 0
local started = 0
local threads = {{}}
unexpected = 0
sent = 0

function setup(thread)
  thread:set("tid", started)
  started = started + 1
  table.insert(threads, thread)
end

function init(args)
  for i, r in ipairs(reqs) do
    formatted[i] = wrk.format(r[1], r[2], r[3], r[4])
  end
  counter = tid or 0
end

function request()
  local r = formatted[(counter % #formatted) + 1]
  counter = counter + nthreads
  sent = sent + 1
  return r
end

{RESPONSE}
function done(summary, latency, requests)
  local e = summary.errors
  local unexpected_total, sent_total = 0, 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
    sent_total = sent_total + (thread:get("sent") or 0)
  end
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d, "unexpected": %d, "sent": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), unexpected_total, sent_total))
end
"""


def _lua_string(value: str) -> str:
    if not value.isascii():
        raise ValueError("wrk scripts hold ASCII only")
    return json.dumps(value)  # ASCII JSON string escapes (\\ \" \n) are Lua escapes too


# With Target.expect: count the 2xx answers whose body lacks that text (wrk then hands every body to Lua).
LUA_RESPONSE = """
function response(status, headers, body)
  if status >= 200 and status < 300 and not string.find(body, {EXPECT}, 1, true) then
    unexpected = unexpected + 1
  end
end
"""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None

    def lua(self) -> str:
        headers = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in self.headers.items())
        body = _lua_string(self.body) if self.body is not None else "nil"
        return f"{{{_lua_string(self.method)}, {_lua_string(self.path)}, {{{headers}}}, {body}}}"


@dataclass
class Target:
    """One thing wrk drives: a server, the requests it cycles through, and how many connections."""

    label: str
    server: Server
    requests: list[Request]
    connections: int
    db: str | None = None  # PostgreSQL database whose backends' CPU is counted
    expect: str | None = None  # a text every 2xx answer must hold (counted by wrk's Lua, else "unexpected")
    script: Path | None = None

    @property
    def threads(self) -> int:
        return min(2, self.connections)

    def write_script(self, workdir: Path) -> None:
        self.script = workdir / f"wrk-{abs(hash((self.label, self.server.port, self.connections)))}.lua"
        response = LUA_RESPONSE.format(EXPECT=_lua_string(self.expect)) if self.expect else ""
        requests = "{" + ",\n".join(r.lua() for r in self.requests) + "}"
        lua = LUA.format(REQUESTS=requests, THREADS=self.threads, RESPONSE=response)
        self.script.write_text(lua)


def pg_backends(db: str) -> list[int]:
    async def fetch() -> list[int]:
        conn = await asyncpg.connect(POSTGRES)
        try:
            return [r["pid"] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", db)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def settle(server: Server, quiet_s: float = 0.25, cores: float = 0.1, limit_s: float = 20.0) -> float:
    """Wait until ``server`` has worked off what the last run left (the requests wrk cut off at its end): its
    processes use under ``cores`` of CPU over ``quiet_s`` twice in a row. Returns the seconds waited."""
    started = time.monotonic()
    last, calm = server.cpu(), 0
    while time.monotonic() - started < limit_s and calm < 2:
        time.sleep(quiet_s)
        now = server.cpu()
        calm = calm + 1 if cpu_delta(last, now) < cores * quiet_s else 0
        last = now
    return time.monotonic() - started


def run_wrk(target: Target, duration: float, sampler: Callable[[], None] | None = None) -> dict[str, Any]:
    """One wrk run against ``target``: requests/s (2xx answers whose body holds ``expect``, if set, over wrk's
    duration), errors, latency, and CPU per request of the server and of the PostgreSQL backends. The CPU is
    counted until the server has settled after wrk stopped, and divided by the requests wrk sent: the ones cut
    off at the end are worked off all the same (LangGraph's runs are sent with on_disconnect=continue)."""
    assert target.script is not None
    db_before = cpu_by_pid(pg_backends(target.db)) if target.db else {}
    cpu_before = target.server.cpu()
    cmd = [
        "wrk", f"-t{target.threads}", f"-c{target.connections}", f"-d{duration:g}s", "--timeout", "30s",
        "-s", str(target.script), target.server.base,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if sampler is not None:
        while proc.poll() is None:
            sampler()
            time.sleep(0.2)
    out, err = proc.communicate()
    settle(target.server)
    cpu = cpu_delta(cpu_before, target.server.cpu())
    db_cpu = cpu_delta(db_before, cpu_by_pid(pg_backends(target.db))) if target.db else None
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}) on {target.label}: {err.strip() or out.strip()}")
    w = json.loads(line.removeprefix("WRKJSON "))
    seconds = w["duration_us"] / 1e6
    errors = w["status"] + w["connect"] + w["read"] + w["write"] + w["timeout"] + w["unexpected"]
    ok = w["requests"] - w["status"] - w["unexpected"]
    return {
        "rps": ok / seconds,
        "ok": ok,
        "errors": errors,
        "non_2xx": w["status"],
        "unexpected": w["unexpected"],
        "p50_ms": w["p50_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "sent": w["sent"],
        "cpu_ms": cpu * 1000 / max(w["sent"], 1),
        "db_cpu_ms": db_cpu * 1000 / max(w["sent"], 1) if db_cpu is not None else None,
        "load": loadavg(),
    }


def compare(targets: list[Target], rounds: int, duration: float, workdir: Path) -> dict[str, dict[str, Any]]:
    """Every target once per round, the order rotating by one each round; medians over the rounds."""
    for t in targets:
        t.write_script(workdir)
        run_wrk(t, min(1.0, duration))  # warm-up: imports, pools, prepared statements (and it settles after)
    runs: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    for r in range(rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for t in order:
            runs[t.label].append(run_wrk(t, duration))
        log(f"  round {r + 1}/{rounds}: " + "  ".join(f"{k} {v[-1]['rps']:.0f}/s" for k, v in runs.items()))
    return {label: summarize(values) for label, values in runs.items()}


def summarize(values: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": values}
    for key in ("rps", "p50_ms", "p99_ms", "cpu_ms", "db_cpu_ms"):
        series = [v[key] for v in values if v[key] is not None]
        out[key] = statistics.median(series) if series else None
    out["errors"] = sum(v["errors"] for v in values)
    out["non_2xx"] = sum(v["non_2xx"] for v in values)
    out["unexpected"] = sum(v["unexpected"] for v in values)
    out["min_rps"] = min(v["rps"] for v in values)
    out["max_rps"] = max(v["rps"] for v in values)
    return out


# ----------------------------------------------------------------------------------------------- fixture


async def prepare(url: str, *, post: bool) -> dict[str, Any]:
    """Schema, the bench workspace (admin key, agent, end user, the page's thread, SPREAD inactive threads) and,
    for ``post``, WORKSPACES more workspaces with a key, an agent, an end user and one inactive thread each."""
    from threadline.agents.schemas import AgentCreate
    from threadline.agents.service import create_agent
    from threadline.api_keys.service import create_key
    from threadline.audit.service import Actor
    from threadline.config import Settings
    from threadline.db import migrate
    from threadline.db.engine import create_engine, create_sessionmaker, write_engine
    from threadline.end_users.schemas import EndUserCreate
    from threadline.end_users.service import create_end_user
    from threadline.logging import configure_logging
    from threadline.models.enums import Scope
    from threadline.threads.schemas import ThreadCreate
    from threadline.threads.service import create_thread
    from threadline.workspaces.service import create_workspace

    configure_logging("warning", "console")  # no audit line per key created
    settings = Settings.model_validate({"database_url": url, "bootstrap": False})  # flat names: old and new
    engine = create_engine(settings)
    await migrate.upgrade(engine)
    # (The sessionmaker takes the settings since the settings were regrouped; an export of the code before that,
    # served through PYTHONPATH for an A/B run, takes the engine alone.)
    takes_settings = "settings" in inspect.signature(create_sessionmaker).parameters
    maker = create_sessionmaker(write_engine(engine), *((settings,) if takes_settings else ()))

    async def workspace(s: Any, name: str, scopes: tuple[Any, ...], threads: int) -> tuple[str, list[str]]:
        ws = await create_workspace(s, name=name)
        _, key = await create_key(s, workspace_id=ws.id, scopes=scopes, name="bench", actor=Actor.system())
        # A FLOW version (the mounts that show the agent's version need one); the threads are inactive: no run.
        spec = AgentCreate.model_validate({"name": "bench", "version": {"mode": "FLOW", "flow": ECHO_FLOW}})
        agent = (await create_agent(s, workspace_id=ws.id, data=spec)).agent
        user = await create_end_user(s, workspace_id=ws.id, data=EndUserCreate(display_name="bench"))
        data = ThreadCreate(agent_id=str(agent.public_id), end_user_id=str(user.public_id), active=False)
        made = [await create_thread(s, workspace_id=ws.id, data=data) for _ in range(threads)]
        return key, [str(t.public_id) for t in made]

    out: dict[str, Any] = {}
    async with maker() as s, s.begin():
        out["key"], threads = await workspace(s, "bench", (Scope.ADMIN,), 1 + SPREAD)
    out["page_thread"], out["spread_threads"] = threads[0], threads[1:]
    out["workspaces"] = []
    if post:
        async with maker() as s, s.begin():
            for i in range(WORKSPACES):
                key, [thread] = await workspace(s, f"bench-{i}", (Scope.WRITE,), 1)
                out["workspaces"].append((key, thread))
    await engine.dispose()
    return out


def seed_page(base: str, key: str, thread: str) -> None:
    """The page thread's 100 messages, end user and agent alternating, through /v1."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
        for i in range(PAGE):
            body = {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {PARAGRAPH}"}
            r = api.post(f"/v1/threads/{thread}/messages", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"seeding the page thread: {r.status_code} {r.text[:300]}")


# ----------------------------------------------------------------------------------------------- surfaces


def page_surfaces(
    key: str, thread: str, number: int, *, openai: bool = False
) -> dict[str, tuple[Request, Callable[[Any], int]]]:
    """The page of 100 on /v1 and on each vendor mount (camelAI names the thread by its ``number``; with
    ``openai``, the OpenAI mount's conversation items too): the request and how to count the messages of its
    answer."""
    bearer = {"Authorization": f"Bearer {key}"}
    api_key = {"X-API-Key": key}
    surfaces = {
        "v1": (Request("GET", f"/v1/threads/{thread}/messages?limit={PAGE}", bearer), lambda b: len(b["data"])),
        "aitronos": (
            Request("GET", f"/aitronos/v1/threads/{thread}/messages?limit={PAGE}", api_key),
            lambda b: len(b["data"]),
        ),
        "feather": (
            Request("GET", f"/feather/api/v1/threads/{thread}/messages?limit={PAGE}", api_key),
            lambda b: len(b["thread"]["messages"]),
        ),
        "altur": (Request("GET", f"/altur/api/v1.0/message/{thread}", {"Authorization": f"api-key {key}"}), len),
        "camelai": (
            Request("GET", f"/camelai/api/v1/threads/{number}/messages", bearer),
            lambda b: b["message_count"],
        ),
    }
    if openai:
        from threadline.dialects.openai import ids as openai_ids

        conversation = openai_ids.conversation_id(uuid.UUID(thread))
        surfaces["openai"] = (
            Request("GET", f"/openai/v1/conversations/{conversation}/items?limit={PAGE}&order=asc", bearer),
            lambda b: len(b["data"]),
        )
    return surfaces


def check(server: Server, request: Request, expect: int, count: Callable[[Any], int] | None = None) -> Any:
    """One request with httpx before the rounds: the answer is what the target is meant to measure."""
    r = httpx.request(
        request.method, server.base + request.path, headers=request.headers, content=request.body, timeout=30
    )
    if r.status_code != expect:
        raise RuntimeError(f"{server.name} {request.method} {request.path}: {r.status_code} {r.text[:300]}")
    body = r.json()
    if count is not None and count(body) != PAGE:
        raise RuntimeError(f"{server.name} {request.path}: {count(body)} messages, not {PAGE}")
    return body


# ---------------------------------------------------------------------------------------------- reporting


class Report:
    def __init__(self, db: str) -> None:
        self.db = db
        self.lines: list[str] = []
        self.data: dict[str, Any] = {"db": db, "started": datetime.now(UTC).isoformat(), "load_start": loadavg()}
        self.failures: list[str] = []

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def errors(self, label: str, result: dict[str, Any]) -> None:
        if result["errors"]:
            what = f"{result['non_2xx']} non-2xx answers, {result['unexpected']} 2xx without the expected text"
            self.failures.append(f"{label}: {result['errors']} errors ({what})")
            self.say(f"    !! {label}: {result['errors']} failed requests ({what})")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else (f"{value:.2f}" if value < 10 else f"{value:.1f}")


def _div(a: float, b: float | None) -> float:
    """a / b, NaN when b is 0 or missing (a run that completed nothing: shown as nan, and FAIL)."""
    return a / b if b else float("nan")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def line_for(label: str, r: dict[str, Any], pg: bool) -> str:
    db = f"  db {_ms(r['db_cpu_ms'])}" if pg else ""
    return (
        f"    {label:34s} {r['rps']:8.1f} req/s  ({r['min_rps']:.0f}-{r['max_rps']:.0f})  p50 {_ms(r['p50_ms'])} "
        f"p99 {_ms(r['p99_ms'])} ms  CPU/req {_ms(r['cpu_ms'])} ms{db}"
    )


# ---------------------------------------------------------------------------------------------- scenarios


@dataclass
class Bench:
    db: str
    url: str
    pgname: str | None
    rounds: int
    duration: float
    workdir: Path
    fx: dict[str, Any]
    report: Report
    langgraph: Path
    openai: bool = False

    def env(self, url: str | None = None) -> dict[str, str]:
        return {
            **SERVER_ENV,
            "THREADLINE_DATABASE_URL": url or self.url,
            "THREADLINE_DATA_DIR": str(self.workdir / "data"),
        }

    def threadline(self, command: str, *extra: str, url: str | None = None, name: str | None = None) -> Server:
        port = free_port()
        return Server(
            name or f"threadline {command} {' '.join(extra)}".strip(),
            threadline_cmd(command, port, *extra),
            self.env(url),
            port,
            self.workdir,
            "/healthz",
        )

    def baseline(self) -> Server:
        port = free_port()
        cmd = [
            sys.executable, "-m", "uvicorn", "baseline:create_app", "--factory", "--app-dir", str(BENCH),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        url = self.url if self.db == "postgres" else "sqlite:///" + self.url.removeprefix("sqlite:///")
        return Server("baseline", cmd, {"BASELINE_DATABASE_URL": url}, port, self.workdir, "/healthz")

    def granian(self) -> Server:
        port = free_port()
        granian = str(Path(sys.executable).parent / "granian")
        cmd = [
            granian, "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
            "threadline.app:create_app",
        ]  # fmt: skip
        return Server("threadline on granian", cmd, {**self.env(), "THREADLINE_RUN_WORKERS": "false"}, port,
                      self.workdir, "/healthz")  # fmt: skip

    def surfaces(self) -> dict[str, tuple[Request, Callable[[Any], int]]]:
        return page_surfaces(self.fx["key"], self.fx["page_thread"], self.fx["page_number"], openai=self.openai)

    def target(self, label: str, server: Server, requests: list[Request], connections: int) -> Target:
        return Target(label, server, requests, connections, db=self.pgname)

    def compare(self, targets: list[Target], duration: float | None = None) -> dict[str, dict[str, Any]]:
        return compare(targets, self.rounds, duration or self.duration, self.workdir)

    # ------------------------------------------------------------------------------------------ requests

    def post_requests(self, prefix: str, spread: str) -> list[Request]:
        body = json.dumps({"role": "user", "content": PARAGRAPH})
        json_type = {"Content-Type": "application/json"}
        if spread == "threads":
            auth = {"Authorization": f"Bearer {self.fx['key']}"}
            pairs = [(auth, t) for t in self.fx["spread_threads"]]
        else:
            pairs = [({"Authorization": f"Bearer {k}"}, t) for k, t in self.fx["workspaces"]]
        return [Request("POST", f"{prefix}/threads/{t}/messages", {**a, **json_type}, body) for a, t in pairs]

    # ----------------------------------------------------------------------------------------- scenarios

    def get(self, tl: Server, base: Server) -> None:
        rep = self.report
        rep.say(f"\n  GET a page of {PAGE} messages, 32 connections (load average {loadavg()})")
        surfaces = self.surfaces()
        v1_body = check(tl, surfaces["v1"][0], 200, surfaces["v1"][1])
        base_req = Request("GET", f"/threads/{self.fx['page_thread']}/messages?limit={PAGE}")
        base_body = check(base, base_req, 200, lambda b: len(b["data"]))
        same_keys = list(v1_body["data"][0]) == list(base_body["data"][0])
        same_ids = [m["id"] for m in v1_body["data"]] == [m["id"] for m in base_body["data"]]
        if not (same_keys and same_ids):
            raise RuntimeError("the baseline's page is not /v1's (keys or ids differ)")
        sizes = (len(json.dumps(v1_body, separators=(",", ":"))), len(json.dumps(base_body, separators=(",", ":"))))
        targets = [self.target("baseline", base, [base_req], 32)]
        for name, (req, count) in surfaces.items():
            try:
                check(tl, req, 200, count)
            except RuntimeError as exc:
                rep.say(f"    ({name}: skipped, {exc})")
                continue
            targets.append(self.target(name, tl, [req], 32))
        res = self.compare(targets)
        for label, r in res.items():
            rep.say(line_for(label if label == "baseline" else f"threadline {label}", r, self.pgname is not None))
            rep.errors(label, r)
        b, v1 = res["baseline"], res["v1"]
        ratio, cpu_ratio = _div(v1["rps"], b["rps"]), _div(v1["cpu_ms"], b["cpu_ms"])
        rep.say(
            f"    /v1 / baseline: throughput x{ratio:.2f} (target >= 0.70: {_verdict(ratio >= 0.7)}), "
            f"CPU per request x{cpu_ratio:.1f} (target <= 1.5: {_verdict(cpu_ratio <= 1.5)}); "
            f"same keys and ids; {sizes[0]:,} vs {sizes[1]:,} bytes"
        )
        mounts = []
        for label, r in res.items():
            if label not in ("baseline", "v1"):
                x = _div(r["rps"], v1["rps"])
                note = "" if label != "openai" else " (not in the target)"
                verdict = _verdict(x >= 0.85) if label != "openai" else "-"
                mounts.append(f"{label} x{x:.2f} {verdict}{note}")
        rep.say("    mounts / v1 (target >= 0.85): " + ", ".join(mounts))
        self.report.data["get"] = {"results": res, "ratio": ratio, "cpu_ratio": cpu_ratio, "bytes": sizes}

    def post(self, tl: Server, base: Server) -> None:
        rep = self.report
        rep.say(f"\n  POST one message to an inactive thread (load average {loadavg()})")
        out: dict[str, Any] = {}
        spreads = (("threads", f"{SPREAD} threads of one workspace"), ("workspaces", f"{WORKSPACES} workspaces"))
        for spread, what in spreads:
            tl_reqs, base_reqs = self.post_requests("/v1", spread), self.post_requests("", spread)
            check(tl, tl_reqs[0], 201)
            check(base, base_reqs[0], 201)
            targets = [
                self.target(f"{who} c{c}", srv, reqs, c)
                for c in (1, 32)
                for who, srv, reqs in (("threadline", tl, tl_reqs), ("baseline", base, base_reqs))
            ]
            rep.say(f"   spread over {what}:")
            res = self.compare(targets)
            for label, r in res.items():
                rep.say(line_for(label, r, self.pgname is not None))
                rep.errors(label, r)
            t1, t32, b1, b32 = (
                res[k]["rps"] for k in ("threadline c1", "threadline c32", "baseline c1", "baseline c32")
            )
            scaling_ok, at32 = _div(t32, t1) >= 3, _div(t32, b32)
            target_scaling = _verdict(scaling_ok) if self.db == "postgres" else "(target on PostgreSQL only)"
            rep.say(
                f"    threadline / baseline at 32: x{at32:.2f} (target >= 0.50: {_verdict(at32 >= 0.5)}); "
                f"at 1: x{_div(t1, b1):.2f}. 1 -> 32 connections: threadline x{_div(t32, t1):.2f} (target >= 3: "
                f"{target_scaling}), baseline x{_div(b32, b1):.2f}"
            )
            out[spread] = {
                "results": res,
                "ratio_c32": _div(t32, b32),
                "scaling": _div(t32, t1),
                "baseline_scaling": _div(b32, b1),
            }
        self.report.data["post"] = out

    def healthz(self, tl: Server, base: Server) -> None:
        rep = self.report
        rep.say(f"\n  GET /healthz, 32 connections (load average {loadavg()})")
        req = Request("GET", "/healthz")
        res = self.compare(
            [self.target("bare uvicorn endpoint", base, [req], 32), self.target("threadline", tl, [req], 32)]
        )
        for label, r in res.items():
            rep.say(line_for(label, r, False))
            rep.errors(label, r)
        ratio = _div(res["threadline"]["rps"], res["bare uvicorn endpoint"]["rps"])
        rep.say(f"    threadline / bare: x{ratio:.2f} (target >= 0.80: {_verdict(ratio >= 0.8)})")
        self.report.data["healthz"] = {"results": res, "ratio": ratio}

    def granian_vs_uvicorn(self, tl: Server) -> None:
        rep = self.report
        rep.say(
            f"\n  threadline served by granian vs uvicorn (`threadline api`), 32 connections (load average {loadavg()})"
        )
        rep.say("    granian: `granian --interface asgi --factory --loop uvloop --workers 1 threadline.app:create_app`")
        with running(self.granian()) as gr:
            page = self.surfaces()["v1"][0]
            check(gr, page, 200, lambda b: len(b["data"]))
            out = {}
            for what, reqs in (("GET page", [page]), ("healthz", [Request("GET", "/healthz")])):
                res = self.compare(
                    [self.target(f"uvicorn {what}", tl, reqs, 32), self.target(f"granian {what}", gr, reqs, 32)]
                )
                for label, r in res.items():
                    rep.say(line_for(label, r, self.pgname is not None and what != "healthz"))
                    rep.errors(label, r)
                x = _div(res[f"granian {what}"]["rps"], res[f"uvicorn {what}"]["rps"])
                rep.say(f"    {what}: granian / uvicorn x{x:.2f}")
                out[what] = {"results": res, "ratio": x}
        self.report.data["granian"] = out

    def workers(self) -> None:
        rep = self.report
        rep.say(f"\n  `threadline api --workers N`, 1 -> 2 processes, 32 connections (load average {loadavg()})")
        probe = subprocess.run(
            [sys.executable, "-m", "threadline.cli", "api", "--help"], capture_output=True, text=True, timeout=60
        )
        if "--workers" not in probe.stdout:
            rep.say("    not available: `threadline api` has no --workers option yet")
            self.report.data["workers"] = "not available"
            return
        w2 = self.threadline("api", "--workers", "2")
        try:
            w2.wait_ready()
        except RuntimeError:
            w2.stop()
            if w2.proc.returncode in (None, 0):
                raise
            said = [ln for ln in w2.tail().splitlines() if ln.strip()]
            rep.say(f"    not available: `threadline api --workers 2` refused to start: {said[-1] if said else '?'}")
            self.report.data["workers"] = "not available"
            return
        with running(self.threadline("api", "--workers", "1")) as w1, running(w2):
            page = self.surfaces()["v1"][0]
            posts = self.post_requests("/v1", "threads")
            out = {}
            for what, reqs in (("GET page", [page]), ("POST", posts)):
                res = self.compare(
                    [self.target(f"1 worker {what}", w1, reqs, 32), self.target(f"2 workers {what}", w2, reqs, 32)]
                )
                for label, r in res.items():
                    rep.say(line_for(label, r, self.pgname is not None))
                    rep.errors(label, r)
                x = _div(res[f"2 workers {what}"]["rps"], res[f"1 worker {what}"]["rps"])
                rep.say(f"    {what}: 1 -> 2 processes x{x:.2f}")
                out[what] = {"results": res, "scaling": x}
        self.report.data["workers"] = out

    def rss_and_wait(self, do_rss: bool, do_wait: bool) -> None:
        rep = self.report
        with running(self.threadline("serve", name="threadline serve")) as srv:
            api = httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {self.fx['key']}"}, timeout=30)
            if do_rss:
                rep.say(f"\n  RSS of `threadline serve` (load average {loadavg()})")
                time.sleep(1.0)
                started = rss_mb(srv.pid)
                for i in range(PROMPT_AGENTS):
                    r = api.post(
                        "/v1/agents",
                        json={
                            "name": f"prompt {i}",
                            "version": {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini"},
                        },
                    )
                    if r.status_code != 201:
                        raise RuntimeError(f"creating a PROMPT agent: {r.status_code} {r.text[:300]}")
                time.sleep(0.5)
                agents = rss_mb(srv.pid)
                page = self.surfaces()["v1"][0]
                target = self.target("serve c64", srv, [page], 64)
                target.write_script(self.workdir)
                peak = [0.0]

                def sample() -> None:
                    peak[0] = max(peak[0], rss_mb(srv.pid))

                loaded = run_wrk(target, max(self.duration, 3.0), sampler=sample)
                rep.errors("serve c64", loaded)
                rep.say(f"    after start:            {started:6.1f} MB (target <= 120: {_verdict(started <= 120)})")
                ok = _verdict(agents <= 120)
                rep.say(f"    after {PROMPT_AGENTS} PROMPT agents:  {agents:6.1f} MB (target <= 120: {ok})")
                rep.say(
                    f"    peak, 64 connections on the page ({loaded['rps']:.0f} req/s): {peak[0]:6.1f} MB "
                    f"(target <= 150: {_verdict(peak[0] <= 150)})"
                )
                self.report.data["rss"] = {
                    "after_start_mb": started,
                    "after_prompt_agents_mb": agents,
                    "peak_c64_mb": peak[0],
                }
            if do_wait:
                self.wait(srv, api)
            api.close()
        if do_wait and self.pgname is not None:
            self.statements()

    def echo_threads(self, api: httpx.Client) -> list[str]:
        r = api.post(
            "/v1/agents", json={"name": "echo", "version": {"mode": "FLOW", "provider": "flow", "flow": ECHO_FLOW}}
        )
        if r.status_code != 201:
            raise RuntimeError(f"creating the FLOW agent: {r.status_code} {r.text[:300]}")
        agent = r.json()["id"]
        user = api.post("/v1/end_users", json={"display_name": "bench"}).json()["id"]
        threads = []
        for _ in range(WAIT_THREADS):
            r = api.post("/v1/threads", json={"agent_id": agent, "end_user_id": user})
            if r.status_code != 201:
                raise RuntimeError(f"creating a thread: {r.status_code} {r.text[:300]}")
            threads.append(r.json()["id"])
        return threads

    def wait_requests(self, threads: list[str]) -> list[Request]:
        headers = {"Authorization": f"Bearer {self.fx['key']}", "Content-Type": "application/json"}
        body = json.dumps({"role": "user", "content": "hello"})
        return [Request("POST", f"/v1/threads/{t}/messages?wait=10", headers, body) for t in threads]

    @staticmethod
    def check_wait(body: Any) -> None:
        replies = body.get("replies") or []
        if not any("echo: hello" in str(m.get("content")) for m in replies):
            shown = {"run": body.get("run"), "replies": replies}
            raise RuntimeError(f"the wait answer holds no echo: {json.dumps(shown)[:1500]}")

    def wait(self, srv: Server, api: httpx.Client) -> None:
        rep = self.report
        rep.say(f"\n  Send and wait, an instant agent, c16 over {WAIT_THREADS} threads (load average {loadavg()})")
        threads = self.echo_threads(api)
        reqs = self.wait_requests(threads)
        self.check_wait(check(srv, reqs[0], 201))
        targets = [Target("threadline ?wait=10", srv, reqs, 16, db=self.pgname, expect="echo: hello")]
        lg_bin = self.langgraph / "bin" / "langgraph"
        with ExitStack() as stack:
            if lg_bin.exists():
                lg = stack.enter_context(running(self.langgraph_server(lg_bin), timeout=120))
                lg_reqs = self.langgraph_requests(lg)
                targets.append(Target("langgraph runs/wait", lg, lg_reqs, 16))
            else:
                rep.say(
                    f"    LangGraph: not available ({lg_bin} missing: python3 -m venv {self.langgraph} && "
                    f"{self.langgraph}/bin/pip install 'langgraph-cli[inmem]')"
                )
            res = self.compare(targets, duration=max(self.duration, WAIT_MIN_S))
        for label, r in res.items():
            rep.say(line_for(label, r, self.pgname is not None and label.startswith("threadline")))
            rep.errors(label, r)
        t = res["threadline ?wait=10"]
        exchange = t["cpu_ms"] + (t["db_cpu_ms"] or 0)
        out: dict[str, Any] = {"results": res, "threadline_cpu_per_exchange_ms": exchange}
        if "langgraph runs/wait" in res:
            lgr = res["langgraph runs/wait"]
            x = _div(t["rps"], lgr["rps"])
            rep.say(
                f"    threadline / LangGraph: x{x:.2f} (target >= 3: {_verdict(x >= 3)}); CPU per exchange (server + "
                f"database): threadline {exchange:.1f} ms, LangGraph {lgr['cpu_ms']:.1f} ms (in memory)"
            )
            out["ratio"] = x
        self.report.data["wait"] = out

    def langgraph_server(self, lg_bin: Path) -> Server:
        project = self.workdir / "langgraph-echo"
        project.mkdir(exist_ok=True)
        (project / "echo_graph.py").write_text(LANGGRAPH_ECHO)
        (project / "langgraph.json").write_text(
            json.dumps({"dependencies": ["."], "graphs": {"echo": "./echo_graph.py:graph"}})
        )
        port = free_port()
        cmd = [str(lg_bin), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
               "--server-log-level", "warning", "--config", str(project / "langgraph.json")]  # fmt: skip
        env = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
        return Server("langgraph dev", cmd, env, port, project, "/ok")

    def langgraph_requests(self, lg: Server) -> list[Request]:
        headers = {"Content-Type": "application/json"}
        body = json.dumps(
            {
                "assistant_id": "echo",
                "input": {"messages": [{"role": "user", "content": "hello"}]},
                "on_disconnect": "continue",  # a run wrk cuts off at its end still completes, as threadline's do
            }
        )
        reqs = []
        with httpx.Client(base_url=lg.base, timeout=30) as client:
            for _ in range(WAIT_THREADS):
                r = client.post("/threads", json={})
                r.raise_for_status()
                reqs.append(Request("POST", f"/threads/{r.json()['thread_id']}/runs/wait", headers, body))
        answer = check(lg, reqs[0], 200)
        if "echo: hello" not in json.dumps(answer):
            raise RuntimeError(f"LangGraph's answer holds no echo: {json.dumps(answer)[:300]}")
        return reqs

    def statements(self) -> None:
        """Statements per exchange on PostgreSQL, through the counting proxy, at 1 and 16 connections."""
        rep = self.report
        assert self.pgname is not None
        rep.say(f"\n  Statements per send-and-wait exchange, PostgreSQL (load average {loadavg()})")
        counter = StatementCounter().start()
        try:
            url = f"postgresql://postgres@127.0.0.1:{counter.port}/{self.pgname}"
            with running(self.threadline("serve", url=url, name="threadline serve via counter")) as srv:
                api = httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {self.fx['key']}"}, timeout=30)
                threads = self.echo_threads(api)
                api.close()
                reqs = self.wait_requests(threads)
                asyncio.run(self._exchanges(srv, reqs, 1, 5))  # warm-up: prepared statements, imports
                settle(srv)
                idle_from, idle_at = counter.snapshot(), time.monotonic()
                time.sleep(2.0)
                idle_rate = (sum(counter.snapshot().values()) - sum(idle_from.values())) / (time.monotonic() - idle_at)
                out: dict[str, Any] = {"idle_statements_per_s": idle_rate}
                for conns, per_conn in ((1, 20), (16, 4)):
                    before, xact_before, runs_before = counter.snapshot(), self._xacts(), self._runs_done()
                    started = time.monotonic()
                    n, unanswered = asyncio.run(self._exchanges(srv, reqs, conns, per_conn))
                    settle(srv)  # what an exchange does after its answer (the job's end) is counted too
                    after, elapsed = counter.snapshot(), time.monotonic() - started
                    time.sleep(1.1)  # pg_stat_database is flushed by idle backends at most once a second
                    xacts, runs = self._xacts() - xact_before, self._runs_done() - runs_before
                    diff = after - before
                    total = (sum(diff.values()) - idle_rate * elapsed) / n
                    control = sum(diff[k] for k in ("BEGIN", "COMMIT", "ROLLBACK")) / n
                    work = total - control
                    top = ", ".join(f"{k} {v / n:.1f}" for k, v in diff.most_common(14))
                    late = f"; {unanswered} answered without the reply (the wait ended first)" if unanswered else ""
                    rep.say(
                        f"    {conns:2d} connection{'s' if conns > 1 else ' '}: {work:5.1f} statements per exchange "
                        f"besides BEGIN/COMMIT (target <= 12: {_verdict(work <= 12)}), {total:.1f} with them; "
                        f"{xacts / n:.1f} transactions (pg_stat_database); {n} exchanges, {runs} runs completed{late}"
                    )
                    rep.say(f"       {top}")
                    out[f"c{conns}"] = {
                        "per_exchange": work,
                        "with_begin_commit": total,
                        "transactions": xacts / n,
                        "exchanges": n,
                        "runs_completed": runs,
                        "unanswered": unanswered,
                        "by_kind": {k: v / n for k, v in diff.items()},
                    }
                rep.say(f"    (idle: {idle_rate:.1f} statements/s from the server's background loops, subtracted)")
                self.report.data["statements"] = out
        finally:
            counter.stop()

    def _scalar(self, sql: str, *args: Any, db: str | None = None) -> int:
        async def fetch() -> int:
            conn = await asyncpg.connect(POSTGRES.rsplit("/", 1)[0] + "/" + (db or "postgres"))
            try:
                return int(await conn.fetchval(sql, *args) or 0)
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def _xacts(self) -> int:
        """Transactions of the bench database so far (the idle backends flush these counters about every second)."""
        return self._scalar("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", self.pgname)

    def _runs_done(self) -> int:
        return self._scalar("SELECT count(*) FROM runs WHERE status = 'completed'", db=self.pgname)

    @staticmethod
    async def _exchanges(srv: Server, reqs: list[Request], conns: int, per_conn: int) -> tuple[int, int]:
        """``conns`` clients, each sending ``per_conn`` messages with wait one after another (over its own share
        of the threads). Returns the number of exchanges and how many answers came without the echo (the wait
        ended before the run: counted, not an error; the run still ends, and its statements are counted)."""
        unanswered = 0
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        async with httpx.AsyncClient(base_url=srv.base, limits=limits, timeout=30) as client:

            async def one(i: int) -> None:
                mine = reqs[i::conns]
                for j in range(per_conn):
                    req = mine[j % len(mine)]
                    r = await client.request(req.method, req.path, headers=req.headers, content=req.body)
                    if r.status_code != 201:
                        raise RuntimeError(f"wait exchange: {r.status_code} {r.text[:300]}")
                    if "echo: hello" not in r.text:
                        nonlocal unanswered
                        unanswered += 1

            await asyncio.gather(*(one(i) for i in range(conns)))
        return conns * per_conn, unanswered


# ------------------------------------------------------------------------------------------------- main


def bench_db(db: str, only: set[str], rounds: int, duration: float, langgraph: Path, openai: bool) -> Report:
    report = Report(db)
    report.say(f"\n== {db}: threadline against a bare baseline, wrk -t2, {rounds} rounds x {duration:g} s, medians ==")
    report.say(f"   load average at start {loadavg()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {source()}")
    report.data["source"] = source()
    with ExitStack() as stack:
        url = stack.enter_context(private_database(db))
        pgname = url.rsplit("/", 1)[1] if db == "postgres" else None
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="threadline-service-bench-")))
        (workdir / "data").mkdir()
        log(f"{db}: fixture")
        fx = asyncio.run(prepare(url, post=bool(only & {"post", "granian", "workers"})))
        b = Bench(db, url, pgname, rounds, duration, workdir, fx, report, langgraph, openai)
        with running(b.threadline("api", name="threadline api")) as tl:
            log(f"{db}: seeding the page thread")
            seed_page(tl.base, fx["key"], fx["page_thread"])
            fx["page_number"] = httpx.get(
                f"{tl.base}/v1/threads/{fx['page_thread']}", headers={"Authorization": f"Bearer {fx['key']}"}
            ).json()["number"]
            if only & {"get", "post", "healthz"}:
                with running(b.baseline()) as base:
                    for name, step in (("get", b.get), ("post", b.post), ("healthz", b.healthz)):
                        if name in only:
                            log(f"{db}: {name}")
                            step(tl, base)
            if "granian" in only:
                log(f"{db}: granian")
                b.granian_vs_uvicorn(tl)
        if "workers" in only:
            log(f"{db}: workers")
            b.workers()
        if only & {"rss", "wait"}:
            log(f"{db}: rss / wait")
            b.rss_and_wait("rss" in only, "wait" in only)
    report.data["load_end"] = loadavg()
    report.say(f"   load average at the end {loadavg()}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"service-{db}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(
        json.dumps({**report.data, "lines": report.lines, "failures": report.failures}, indent=2, default=str)
    )
    report.say(f"   written to {out}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("pg", "postgres", "sqlite", "both"), default="both")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per wrk run (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison (default 3)")
    parser.add_argument(
        "--langgraph", type=Path, default=Path(LANGGRAPH_DEFAULT), help="venv with langgraph-cli[inmem]"
    )
    parser.add_argument("--openai-mount", action="store_true", help="get: the OpenAI mount's items page too")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if args.duration <= 0 or args.rounds < 1:
        parser.error("--duration must be > 0 and --rounds >= 1")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    dbs = ["postgres", "sqlite"] if args.db == "both" else ["postgres" if args.db in ("pg", "postgres") else "sqlite"]
    started = time.monotonic()
    failures = []
    for db in dbs:
        report = bench_db(db, only, args.rounds, args.duration, args.langgraph, args.openai_mount)
        failures += [f"{db}: {f}" for f in report.failures]
    print(f"\ndone in {time.monotonic() - started:.0f} s; load average {loadavg()}")
    if failures:
        print("failed requests:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
