"""Pagination and write benchmark: one thread with N messages, measured over HTTP against a real server.

    .venv/bin/python bench/pagination.py --db postgres   # 1,000,000 messages
    .venv/bin/python bench/pagination.py --db sqlite     # 100,000 messages
    .venv/bin/python bench/pagination.py --db sqlite --quick

Steps: create a private database (PostgreSQL: ``threadline_bench_<random>`` on the server given by
``--postgres-url``, dropped at the end; SQLite: a file in a temporary directory), apply the migrations,
create a workspace, an API key, an agent, an end user and two threads with the services, bulk-load N
messages into the first thread (COPY on PostgreSQL, executemany on SQLite), start ``uvicorn
threadline.app:create_app --factory`` on a free loopback port, then measure:

* GET /v1/threads/{id}/messages?limit=100 -- first, middle (cursor ``after`` = message N/2) and last page,
  each in both orders -- and the ratio deep page / first page (p50; target <= 1.3);
* POST /v1/threads/{id}/messages with 1, 8 and 32 concurrent clients, all writing to ONE fresh thread.

Diagnostics alongside: the same page calls made in-process without HTTP (``messages.service``), two
baselines (a 1-message page, /healthz), the server's and PostgreSQL's CPU per request (from /proc), the
page query plans, and checks that every page holds the expected messages and that the write thread ends
with exactly the messages created, numbered without gaps.

Results are printed and written to bench/results/<db>-<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from threadline.agents.schemas import AgentCreate
from threadline.agents.service import create_agent
from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings, normalize_database_url
from threadline.db import migrate
from threadline.db.engine import WRITE_OPTION, create_engine, create_sessionmaker, is_sqlite
from threadline.end_users.schemas import EndUserCreate
from threadline.end_users.service import create_end_user
from threadline.kit.ids import uuid7
from threadline.kit.pagination import Order
from threadline.messages import service as message_service
from threadline.messages.repository import MessageRepository
from threadline.models import Message, Thread
from threadline.models.enums import Direction, MessageStatus, MessageType, Role, Scope, SentBy, Source
from threadline.threads.schemas import ThreadCreate
from threadline.threads.service import create_thread
from threadline.workspaces.service import create_workspace

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE_LIMIT = 100
TARGET_RATIO = 1.3
WRITE_LEVELS = (1, 8, 32)

# Columns the loader fills; every other column of ``messages`` is nullable and stays NULL (as it does for
# a plain API message without an integration, an operator, tool calls or a reply-to).
LOAD_COLUMNS = (
    "workspace_id", "thread_id", "seq", "number", "public_id", "role", "type", "content", "attachments", "metadata",
    "direction", "sent_by", "source", "status", "sent_at", "created_at", "updated_at",
)  # fmt: skip

LOREM = (
    "Thanks for getting back to me. I tried the steps you sent yesterday, but the order page still shows "
    "the old delivery address, and the confirmation email went to my previous account. Could you check "
    "whether the change was saved on your side, and tell me when the courier will pick the parcel up? "
    "I am at home all afternoon, so any time after two works. Also, is there a way to get the invoice as "
    "a PDF rather than inside the email body? My accountant needs it for the quarterly report."
)


# --------------------------------------------------------------------------------------------------------
# Configuration and results
# --------------------------------------------------------------------------------------------------------


@dataclass
class Config:
    db: str
    messages: int
    quick: bool
    read_requests: int
    read_warmup_rounds: int
    write_requests: int
    service_requests: int
    postgres_url: str


@dataclass
class Stats:
    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_s: list[float]) -> Stats:
        ms = sorted(s * 1000 for s in samples_s)
        return cls(
            n=len(ms),
            p50_ms=_percentile(ms, 50),
            p95_ms=_percentile(ms, 95),
            p99_ms=_percentile(ms, 99),
            mean_ms=statistics.fmean(ms),
            min_ms=ms[0],
            max_ms=ms[-1],
        )


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


@dataclass
class Fixture:
    workspace_id: int
    api_key: str
    read_thread_key: int
    read_thread_id: str
    write_thread_key: int
    write_thread_id: str


@dataclass(frozen=True)
class ReadCase:
    """One kind of page request. Seqs name messages: message k is the k-th of the thread."""

    name: str
    page: str  # first | middle | last | middle-before
    order: str
    after_seq: int | None
    before_seq: int | None
    first_seq: int  # expected first item of the page, in page order
    last_seq: int  # expected last item
    has_more: bool
    in_ratio: bool = True
    limit: int = PAGE_LIMIT
    path: str | None = None  # another URL than the thread's messages (a baseline)

    def url(self, fx: Fixture) -> str:
        return self.path or f"/v1/threads/{fx.read_thread_id}/messages"

    def params(self, ids: dict[int, str]) -> dict[str, Any]:
        if self.path is not None:
            return {}
        params: dict[str, Any] = {"limit": self.limit, "order": self.order}
        if self.after_seq is not None:
            params["after"] = ids[self.after_seq]
        if self.before_seq is not None:
            params["before"] = ids[self.before_seq]
        return params

    def describe(self) -> str:
        if self.path is not None:
            return f"GET {self.path} (no database)"
        cursor = [f"limit={self.limit}"] if self.limit != PAGE_LIMIT else []
        if self.after_seq is not None:
            cursor.append(f"after=#{self.after_seq}")
        if self.before_seq is not None:
            cursor.append(f"before=#{self.before_seq}")
        return f"order={self.order} " + (" ".join(cursor) or "no cursor") + f" -> #{self.first_seq}..#{self.last_seq}"


def read_cases(n: int) -> list[ReadCase]:
    mid = n // 2
    return [
        ReadCase("first/asc", "first", "asc", None, None, 1, PAGE_LIMIT, True),
        ReadCase("first/desc", "first", "desc", None, PAGE_LIMIT + 1, PAGE_LIMIT, 1, False),
        ReadCase("middle/asc", "middle", "asc", mid, None, mid + 1, mid + PAGE_LIMIT, True),
        ReadCase("middle/desc", "middle", "desc", mid, None, mid + PAGE_LIMIT, mid + 1, True),
        ReadCase("last/asc", "last", "asc", n - PAGE_LIMIT, None, n - PAGE_LIMIT + 1, n, False),
        ReadCase("last/desc", "last", "desc", None, None, n, n - PAGE_LIMIT + 1, True),
        # Not part of the target: scrolling back from the middle (a chat UI loading older messages).
        ReadCase("mid-before/desc", "middle-before", "desc", None, mid, mid - 1, mid - PAGE_LIMIT, True, False),
        ReadCase("mid-before/asc", "middle-before", "asc", None, mid, mid - PAGE_LIMIT, mid - 1, True, False),
        # Baselines: what a request costs without the 100 messages, and without the database at all.
        ReadCase("first/asc 1", "baseline", "asc", None, None, 1, 1, True, False, limit=1),
        ReadCase("healthz", "baseline", "-", None, None, 0, 0, False, False, limit=0, path="/healthz"),
    ]


# Cases whose server and database CPU per request are measured (each alone).
CPU_CASES = ("healthz", "first/asc 1", "first/asc", "middle/asc", "last/desc")

# The ratios the target is about: (deep case, first-page case) in the same order.
RATIO_PAIRS = (
    ("middle/asc", "first/asc"),
    ("middle/desc", "first/desc"),
    ("last/asc", "first/asc"),
    ("last/desc", "first/desc"),
)


# Set when the run is interrupted: loader threads check it between batches.
STOP = threading.Event()


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------------------
# Database lifecycle (private database, always dropped)
# --------------------------------------------------------------------------------------------------------


class BenchDatabase:
    """A database only this run uses: ``threadline_bench_<random>`` on PostgreSQL, a temp file on SQLite."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.kind = cfg.db
        self.name = f"threadline_bench_{secrets.token_hex(6)}"
        self.created = False
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if self.kind == "postgres":
            admin = make_url(cfg.postgres_url)
            if admin.get_backend_name() != "postgresql":
                raise SystemExit(f"--postgres-url must be a postgresql:// URL, got {cfg.postgres_url!r}")
            self.admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
            self.dsn = admin.set(drivername="postgresql", database=self.name).render_as_string(hide_password=False)
            self.url = self.dsn
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="threadline-bench-")
            self.path = Path(self._tmpdir.name) / "bench.db"
            self.url = f"sqlite:///{self.path}"

    async def create(self) -> None:
        if self.kind != "postgres":
            self.created = True
            return
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
        finally:
            await conn.close()

    def drop(self) -> None:
        """Synchronous, so it also runs after the event loop died (Ctrl-C, errors)."""
        if self.kind == "postgres":
            if self.created:
                asyncio.run(self.drop_async())
        elif self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
            log("removed the SQLite temp directory")

    async def drop_async(self) -> None:
        if self.kind != "postgres" or not self.created:
            return
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created = False
        log(f"dropped database {self.name}")

    def settings(self) -> Settings:
        return Settings(database_url=self.url, auto_migrate=False, bootstrap=False, log_level="warning")


def write_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # SQLite writers must BEGIN IMMEDIATE (see threadline.db.engine); PostgreSQL needs nothing special.
    return create_sessionmaker(
        engine.execution_options(**{WRITE_OPTION: True}) if is_sqlite(engine) else engine, Settings()
    )


async def create_fixture(engine: AsyncEngine) -> Fixture:
    """Workspace, admin key, agent, end user, and two threads (bulk-read one, write one), via the services."""
    maker = write_sessionmaker(engine)
    async with maker() as session, session.begin():
        ws = await create_workspace(session, name=f"bench-{secrets.token_hex(4)}")
        _, secret = await create_key(
            session, workspace_id=ws.id, scopes=(Scope.ADMIN,), name="bench", actor=Actor.system()
        )
        agent = (await create_agent(session, workspace_id=ws.id, data=AgentCreate(name="bench agent"))).agent
        end_user = await create_end_user(session, workspace_id=ws.id, data=EndUserCreate(display_name="bench user"))
        await session.flush()
        spec = ThreadCreate(agent_id=str(agent.public_id), end_user_id=str(end_user.public_id))
        read_thread = await create_thread(session, workspace_id=ws.id, data=spec)
        write_thread = await create_thread(session, workspace_id=ws.id, data=spec)
        return Fixture(
            workspace_id=ws.id,
            api_key=secret,
            read_thread_key=read_thread.id,
            read_thread_id=str(read_thread.public_id),
            write_thread_key=write_thread.id,
            write_thread_id=str(write_thread.public_id),
        )


# --------------------------------------------------------------------------------------------------------
# Bulk load
# --------------------------------------------------------------------------------------------------------


def message_rows(fx: Fixture, n: int, start: datetime, json_as_text: bool) -> Iterator[tuple[Any, ...]]:
    """Rows in LOAD_COLUMNS order, as ``messages.service.append_message`` would fill them on the plain
    API channel: user -> INBOUND/end_user/RECEIVED, assistant -> OUTBOUND/agent/SENT (with sent_at); the
    workspace's numbers 1..n (the loaders then move its counter past them).
    Messages are one second apart; public ids are UUIDv7, increasing with seq."""
    empty_list: Any = "[]" if json_as_text else []
    empty_obj: Any = "{}" if json_as_text else {}
    for seq in range(1, n + 1):
        at = start + timedelta(seconds=seq)
        user = seq % 2 == 1
        content = f"#{seq} " + LOREM[: 40 + (seq * 7919) % 400]
        yield (
            fx.workspace_id,
            fx.read_thread_key,
            seq,
            seq,  # the workspace's message numbers: it has no other messages
            uuid7(),
            Role.USER.value if user else Role.ASSISTANT.value,
            MessageType.TEXT.value,
            content,
            empty_list,
            empty_obj,
            (Direction.INBOUND if user else Direction.OUTBOUND).value,
            (SentBy.END_USER if user else SentBy.AGENT).value,
            Source.API.value,
            (MessageStatus.RECEIVED if user else MessageStatus.SENT).value,
            None if user else at,
            at,
            at,
        )


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(rows, size)):
        if STOP.is_set():
            raise RuntimeError("interrupted")
        yield chunk


async def load_postgres(db: BenchDatabase, fx: Fixture, n: int) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(seconds=n + 1)
    last_at = start + timedelta(seconds=n)
    conn = await asyncpg.connect(db.dsn)
    try:
        t0 = time.perf_counter()
        loaded = 0
        chunks = _chunks(message_rows(fx, n, start, json_as_text=True), 50_000)
        async with conn.transaction():
            # Build the next chunk in a thread while the server ingests this one.
            pending = asyncio.create_task(asyncio.to_thread(next, chunks, None))
            while (chunk := await pending) is not None:
                pending = asyncio.create_task(asyncio.to_thread(next, chunks, None))
                await conn.copy_records_to_table("messages", records=chunk, columns=LOAD_COLUMNS)
                loaded += len(chunk)
                if loaded % 200_000 == 0 or loaded == n:
                    log(f"  copied {loaded:,} / {n:,} rows ({loaded / (time.perf_counter() - t0):,.0f} rows/s)")
            await conn.execute(
                "UPDATE threads SET last_seq = $1, message_count = $2, last_message_at = $3, updated_at = $3 "
                "WHERE id = $4",
                n,
                n,
                last_at,
                fx.read_thread_key,
            )
            await conn.execute(
                "UPDATE workspace_counters SET last_message_number = $1 WHERE workspace_id = $2", n, fx.workspace_id
            )
        load_s = time.perf_counter() - t0
        # VACUUM sets hint bits and the visibility map now, instead of autovacuum (or the first reader of each
        # page) doing it in the middle of the measurements; ANALYZE gives the planner the new row counts.
        t1 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) messages")
        await conn.execute("ANALYZE")
        vacuum_s = time.perf_counter() - t1
        size = await conn.fetchval("SELECT pg_total_relation_size('messages')")
    finally:
        await conn.close()
    return {
        "method": "asyncpg copy_records_to_table, 50,000-row chunks, one transaction, all indexes in place",
        "rows": n,
        "load_s": load_s,
        "rows_per_s": n / load_s,
        "vacuum_analyze_s": vacuum_s,
        "messages_table_bytes": size,
    }


def load_sqlite(db: BenchDatabase, dialect: Any, fx: Fixture, n: int) -> dict[str, Any]:
    """executemany in 10,000-row batches inside one transaction. Values go through SQLAlchemy's own bind
    processors for this dialect (UUID as 32 hex chars, naive-UTC datetime text, JSON text), so the rows
    read back exactly like rows the ORM wrote."""
    table = Message.__table__
    processors = [table.c[name].type.bind_processor(dialect) for name in LOAD_COLUMNS]
    placeholders = ", ".join("?" for _ in LOAD_COLUMNS)
    sql = f"INSERT INTO messages ({', '.join(LOAD_COLUMNS)}) VALUES ({placeholders})"
    start = datetime.now(UTC) - timedelta(seconds=n + 1)
    last_at = start + timedelta(seconds=n)
    stamp = table.c["created_at"].type.bind_processor(dialect)
    assert stamp is not None
    conn = sqlite3.connect(db.path, isolation_level=None)
    try:
        # Load-only pragmas: this connection only. The server's connections use threadline's own pragmas.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("PRAGMA temp_store=MEMORY")
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        loaded = 0
        for chunk in _chunks(message_rows(fx, n, start, json_as_text=False), 10_000):
            conn.executemany(
                sql,
                [tuple(p(v) if p is not None else v for p, v in zip(processors, row, strict=True)) for row in chunk],
            )
            loaded += len(chunk)
            if loaded % 50_000 == 0 or loaded == n:
                log(f"  inserted {loaded:,} / {n:,} rows ({loaded / (time.perf_counter() - t0):,.0f} rows/s)")
        conn.execute(
            "UPDATE threads SET last_seq = ?, message_count = ?, last_message_at = ?, updated_at = ? WHERE id = ?",
            (n, n, stamp(last_at), stamp(last_at), fx.read_thread_key),
        )
        conn.execute(
            "UPDATE workspace_counters SET last_message_number = ? WHERE workspace_id = ?", (n, fx.workspace_id)
        )
        conn.execute("COMMIT")
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        analyze_s = time.perf_counter() - t1
    finally:
        conn.close()
    return {
        "method": "sqlite3 executemany, 10,000-row batches, one transaction, synchronous=OFF, all indexes in place",
        "rows": n,
        "load_s": load_s,
        "rows_per_s": n / load_s,
        "analyze_checkpoint_s": analyze_s,
        "database_file_bytes": db.path.stat().st_size,
    }


async def verify_load(engine: AsyncEngine, fx: Fixture, n: int) -> None:
    """Read rows back through the ORM: if the loader wrote a wrong format, this is where it shows."""
    maker = create_sessionmaker(engine, Settings())
    async with maker() as session:
        thread = (await session.execute(select(Thread).where(Thread.id == fx.read_thread_key))).scalar_one()
        assert thread.last_seq == n and thread.message_count == n, (thread.last_seq, thread.message_count)
        count, lo, hi = (
            await session.execute(
                select(func.count(), func.min(Message.seq), func.max(Message.seq)).where(
                    Message.thread_id == fx.read_thread_key
                )
            )
        ).one()
        assert (count, lo, hi) == (n, 1, n), (count, lo, hi)
        rows = (
            await session.execute(
                select(Message).where(Message.thread_id == fx.read_thread_key, Message.seq.in_([1, 2, n]))
            )
        ).scalars()
        by_seq = {m.seq: m for m in rows}
        first, second, last = by_seq[1], by_seq[2], by_seq[n]
        assert first.role is Role.USER and first.direction is Direction.INBOUND and first.sent_at is None
        assert second.role is Role.ASSISTANT and second.status is MessageStatus.SENT and second.sent_at is not None
        assert first.attachments == [] and first.metadata_ == {}
        assert first.created_at < second.created_at < last.created_at
        assert first.public_id < second.public_id < last.public_id
        assert (first.number, last.number) == (1, n)
        assert thread.last_message_at == last.created_at


async def ids_by_seq(engine: AsyncEngine, thread_key: int, seqs: list[int]) -> dict[int, str]:
    maker = create_sessionmaker(engine, Settings())
    async with maker() as session:
        rows = await session.execute(
            select(Message.seq, Message.public_id).where(Message.thread_id == thread_key, Message.seq.in_(seqs))
        )
        return {seq: str(public_id) for seq, public_id in rows}


# --------------------------------------------------------------------------------------------------------
# Diagnostics without HTTP: the service call alone, and the page query's plan
# --------------------------------------------------------------------------------------------------------


async def service_timings(
    engine: AsyncEngine, fx: Fixture, cases: list[ReadCase], ids: dict[int, str], rounds: int
) -> dict[str, Stats]:
    """``messages.service.list_messages`` in this process (thread lookup, cursor lookup, page query, ORM
    rows), one session per call, cases interleaved: the database's share of a request."""
    maker = create_sessionmaker(engine, Settings())
    cases = [c for c in cases if c.path is None]
    samples: dict[str, list[float]] = {c.name: [] for c in cases}

    async def once(case: ReadCase) -> float:
        params = case.params(ids)
        t0 = time.perf_counter()
        async with maker() as session:
            page = await message_service.list_messages(
                session,
                workspace_id=fx.workspace_id,
                thread_id=fx.read_thread_id,
                limit=case.limit,
                order=Order(case.order),
                after=params.get("after"),
                before=params.get("before"),
            )
            assert len(page.items) == case.limit and page.items[0].seq == case.first_seq, case.name
        return time.perf_counter() - t0

    for _ in range(max(3, rounds // 10)):
        for case in cases:
            await once(case)
    for _ in range(rounds):
        for case in cases:
            samples[case.name].append(await once(case))
    return {name: Stats.of(s) for name, s in samples.items()}


async def query_plans(engine: AsyncEngine, fx: Fixture, n: int) -> dict[str, str]:
    """The plan of the page query the repository builds, for the first, middle and newest pages."""
    maker = create_sessionmaker(engine, Settings())
    sqlite = is_sqlite(engine)
    plans: dict[str, str] = {}
    async with maker() as session:
        repo = MessageRepository(session, fx.workspace_id)
        base = repo.scoped(Message).where(Message.thread_id == fx.read_thread_key)
        statements = {
            "first/asc": base.order_by(Message.seq.asc()).limit(PAGE_LIMIT + 1),
            "middle/asc": base.where(Message.seq > n // 2).order_by(Message.seq.asc()).limit(PAGE_LIMIT + 1),
            "last/desc": base.order_by(Message.seq.desc()).limit(PAGE_LIMIT + 1),
            "cursor lookup (seq_of)": select(Message.seq).where(
                Message.workspace_id == fx.workspace_id,
                Message.thread_id == fx.read_thread_key,
                Message.public_id == uuid.UUID(int=0),
            ),
        }
        for name, stmt in statements.items():
            compiled = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
            rows = (await session.execute(text(explain + compiled))).all()
            plans[name] = "\n".join(str(row[-1]) for row in rows)
    return plans


# --------------------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------------------


class Server:
    """``uvicorn threadline.app:create_app --factory``, one worker, on a free loopback port."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    async def start(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        env = {
            **os.environ,
            "THREADLINE_DATABASE_URL": self.database_url,
            "THREADLINE_AUTO_MIGRATE": "false",
            "THREADLINE_BOOTSTRAP": "false",
            "THREADLINE_LOG_LEVEL": "warning",
        }
        cmd = [
            sys.executable, "-m", "uvicorn", "threadline.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
        ]  # fmt: skip
        log_file = self.log_path.open("wb")
        # Its own session: a Ctrl-C reaches only us, and we stop the server in order (see stop()).
        self.proc = subprocess.Popen(  # noqa: ASYNC220 -- returns at once; we poll /healthz below
            cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        log_file.close()
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if (await client.get(f"{self.base_url}/healthz")).status_code == 200:
                        return self.base_url
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer /healthz in 60 s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log(f"server stopped (pid {self.proc.pid})")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by the server process and, on PostgreSQL, by the backends connected to the bench database
    (found through pg_stat_activity; same machine). Explains where a request's time goes.

    Backends come and go (the pool opens overflow connections under concurrency and closes them later),
    so a sampler records every backend's CPU twice a second and a backend that exits keeps its last
    reading: an interval's database CPU is the sum of each backend's growth over it."""

    SAMPLE_S = 0.5

    def __init__(self, server: Server, db: BenchDatabase) -> None:
        self.server = server
        self.db = db
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._seen: dict[int, float] = {}
        self._sampler: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CpuMeter:
        if self.db.kind == "postgres":
            self._conn = await asyncpg.connect(self.db.admin_dsn)
            self._sampler = asyncio.create_task(self._sample_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.SAMPLE_S)
            await self._refresh()

    async def _refresh(self) -> None:
        if self._conn is None:
            return
        async with self._lock:
            rows = await self._conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self.db.name
            )
        for row in rows:
            cpu = process_cpu_s(row["pid"])
            if cpu >= self._seen.get(row["pid"], 0.0):
                self._seen[row["pid"]] = cpu

    async def snapshot(self) -> tuple[float, dict[int, float] | None]:
        server = process_cpu_s(self.server.proc.pid) if self.server.proc else 0.0
        if self._conn is None:
            return server, None
        await self._refresh()
        return server, dict(self._seen)

    @staticmethod
    def per_request_ms(
        before: tuple[float, dict[int, float] | None], after: tuple[float, dict[int, float] | None], n: int
    ) -> dict[str, Any]:
        server = (after[0] - before[0]) / n * 1000
        database = None
        if before[1] is not None and after[1] is not None:
            grown = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
            database = grown / n * 1000
        return {"server_cpu_ms": server, "database_cpu_ms": database}


# --------------------------------------------------------------------------------------------------------
# HTTP measurements
# --------------------------------------------------------------------------------------------------------


def check_page(case: ReadCase, response: httpx.Response, ids: dict[int, str]) -> list[str]:
    """Problems with a page (wrong status, size or boundaries are fatal; has_more only reported)."""
    if response.status_code != 200:
        raise RuntimeError(f"{case.name}: HTTP {response.status_code}: {response.text[:500]}")
    if case.path is not None:
        return []
    body = response.json()
    data = body["data"]
    if len(data) != case.limit:
        raise RuntimeError(f"{case.name}: {len(data)} items, expected {case.limit}")
    for seq, item in ((case.first_seq, data[0]), (case.last_seq, data[-1])):
        if item["id"] != ids[seq]:
            raise RuntimeError(f"{case.name}: item {item['id']} where message #{seq} ({ids[seq]}) was expected")
    problems = []
    if body["has_more"] is not case.has_more:
        problems.append(f"{case.name}: has_more={body['has_more']}, expected {case.has_more}")
    return problems


async def measure_reads(
    base_url: str, fx: Fixture, cases: list[ReadCase], ids: dict[int, str], requests: int, warmup_rounds: int
) -> tuple[dict[str, Stats], list[str], int]:
    """Sequential GETs on one keep-alive connection; the cases are interleaved round-robin, so a burst of
    load from elsewhere on the machine falls on all of them alike instead of skewing one."""
    headers = {"Authorization": f"Bearer {fx.api_key}"}
    samples: dict[str, list[float]] = {c.name: [] for c in cases}
    params = {c.name: c.params(ids) for c in cases}
    urls = {c.name: c.url(fx) for c in cases}
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        page_bytes = 0
        for case in cases:
            problems += check_page(case, await client.get(urls[case.name], params=params[case.name]), ids)
        for _ in range(warmup_rounds):
            for case in cases:
                (await client.get(urls[case.name], params=params[case.name])).raise_for_status()
        for _ in range(requests):
            for case in cases:
                t0 = time.perf_counter()
                response = await client.get(urls[case.name], params=params[case.name])
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    raise RuntimeError(f"{case.name}: HTTP {response.status_code}: {response.text[:300]}")
                samples[case.name].append(elapsed)
                if case.path is None and case.limit == PAGE_LIMIT:
                    page_bytes = len(response.content)
    return {name: Stats.of(s) for name, s in samples.items()}, problems, page_bytes


async def measure_read_cpu(
    base_url: str, fx: Fixture, cases: list[ReadCase], ids: dict[int, str], meter: CpuMeter, requests: int
) -> dict[str, dict[str, Any]]:
    """Server and database CPU per request for a few cases, each run alone (CPU counters cannot be split
    between interleaved requests). Clock ticks are 10 ms, so ``requests`` should be in the hundreds."""
    headers = {"Authorization": f"Bearer {fx.api_key}"}
    out = {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        for case in cases:
            url, params = case.url(fx), case.params(ids)
            before = await meter.snapshot()
            t0 = time.perf_counter()
            for _ in range(requests):
                (await client.get(url, params=params)).raise_for_status()
            wall = time.perf_counter() - t0
            after = await meter.snapshot()
            out[case.name] = {"wall_ms": wall / requests * 1000, **CpuMeter.per_request_ms(before, after, requests)}
    return out


@dataclass
class WriteLevel:
    clients: int
    requests: int
    ok: int
    errors: dict[str, int]
    seconds: float
    requests_per_s: float
    latency: Stats | None
    server_cpu_ms: float | None = None
    database_cpu_ms: float | None = None


def _write_body(clients: int, i: int) -> dict[str, Any]:
    role = "user" if i % 2 == 0 else "assistant"
    return {"role": role, "content": f"bench write {clients}/{i}: " + LOREM[: 40 + (i * 7919) % 200]}


async def _write_level(
    base_url: str, url: str, headers: dict[str, str], clients: int, requests: int
) -> tuple[WriteLevel, int]:
    """``requests`` POSTs spread over ``clients`` concurrent tasks sharing one pool of ``clients``
    keep-alive connections. Returns the level and how many messages it created (warm-up included)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120, limits=limits) as client:
        # Warm-up: open every connection first; these messages are created too, and counted.
        warm = await asyncio.gather(*(client.post(url, json=_write_body(clients, -i - 1)) for i in range(2 * clients)))
        created = sum(1 for r in warm if r.status_code == 201)
        counter = itertools.count()
        latencies: list[float] = []
        errors: Counter[str] = Counter()

        async def worker() -> None:
            while (i := next(counter)) < requests:
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, json=_write_body(clients, i))
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                elapsed = time.perf_counter() - t0
                if response.status_code == 201:
                    latencies.append(elapsed)
                else:
                    errors[f"HTTP {response.status_code}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
    level = WriteLevel(
        clients=clients,
        requests=requests,
        ok=len(latencies),
        errors=dict(errors),
        seconds=seconds,
        requests_per_s=len(latencies) / seconds,
        latency=Stats.of(latencies) if latencies else None,
    )
    return level, created + len(latencies)


async def measure_writes(
    base_url: str, fx: Fixture, levels: tuple[int, ...], requests: int, meter: CpuMeter
) -> tuple[list[WriteLevel], int]:
    """POST /v1/threads/{id}/messages, all clients on ONE thread (the contended case: every writer takes
    that thread's row lock for its next seq). Returns the levels and how many messages were created."""
    url = f"/v1/threads/{fx.write_thread_id}/messages"
    headers = {"Authorization": f"Bearer {fx.api_key}"}
    created = 0
    results = []
    for clients in levels:
        before = await meter.snapshot()
        level, made = await _write_level(base_url, url, headers, clients, requests)
        cpu = CpuMeter.per_request_ms(before, await meter.snapshot(), made)  # warm-up included: all POSTs
        level.server_cpu_ms, level.database_cpu_ms = cpu["server_cpu_ms"], cpu["database_cpu_ms"]
        created += made
        results.append(level)
        log(
            f"  {clients:>2} clients: {level.requests_per_s:,.0f} req/s"
            + (f", p50 {level.latency.p50_ms:.1f} ms, p99 {level.latency.p99_ms:.1f} ms" if level.latency else "")
            + (f", errors {level.errors}" if level.errors else "")
        )
    return results, created


async def verify_writes(engine: AsyncEngine, fx: Fixture, created: int) -> dict[str, Any]:
    """The write thread must hold exactly the created messages, numbered 1..created with no gap."""
    maker = create_sessionmaker(engine, Settings())
    async with maker() as session:
        thread = (await session.execute(select(Thread).where(Thread.id == fx.write_thread_key))).scalar_one()
        count, lo, hi = (
            await session.execute(
                select(func.count(), func.min(Message.seq), func.max(Message.seq)).where(
                    Message.thread_id == fx.write_thread_key
                )
            )
        ).one()
    ok = count == created == thread.message_count == thread.last_seq == (hi or 0) and (lo or 1) == 1
    return {
        "created_201": created,
        "rows": count,
        "min_seq": lo,
        "max_seq": hi,
        "thread_message_count": thread.message_count,
        "thread_last_seq": thread.last_seq,
        "consistent": ok,
    }


# --------------------------------------------------------------------------------------------------------
# Machine and report
# --------------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


async def server_version(engine: AsyncEngine) -> str:
    if is_sqlite(engine):
        return f"SQLite {sqlite3.sqlite_version}"
    async with engine.connect() as conn:
        return f"PostgreSQL {(await conn.execute(text('SHOW server_version'))).scalar_one()}"


def ratios(reads: dict[str, Stats]) -> list[dict[str, Any]]:
    out = []
    for deep, first in RATIO_PAIRS:
        ratio = reads[deep].p50_ms / reads[first].p50_ms
        out.append({"deep": deep, "first": first, "ratio_p50": ratio, "pass": ratio <= TARGET_RATIO})
    return out


def print_report(result: dict[str, Any], cases: list[ReadCase]) -> None:
    line = "-" * 100
    n = result["messages"]
    print()
    print(line)
    print(f"threadline pagination benchmark -- {result['database']} -- {n:,} messages in one thread")
    print(
        f"{result['started_at']}  {result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), "
        f"{result['machine']['memory_gib']} GiB, Python {result['machine']['python']}"
    )
    print(f"load average at start {result['loadavg_start']}, at end {result['loadavg_end']} (shared machine)")
    print(line)
    load = result["load"]
    print(
        f"bulk load: {load['rows']:,} rows in {load['load_s']:.1f} s = {load['rows_per_s']:,.0f} rows/s "
        f"({load['method']})"
    )
    extra = {k: v for k, v in load.items() if k in ("vacuum_analyze_s", "analyze_checkpoint_s")}
    for k, v in extra.items():
        print(f"           {k}: {v:.1f} s")
    print(line)
    reads = result["reads"]["http"]
    service = result["reads"]["service"]
    print(
        f"GET /v1/threads/{{id}}/messages?limit={PAGE_LIMIT}: {result['reads']['requests_per_case']} sequential "
        f"requests per case, interleaved, after {result['reads']['warmup_rounds']} warm-up rounds; "
        f"page = {result['reads']['page_bytes']:,} bytes"
    )
    print(f"{'case':<17}{'request':<44}{'p50':>8}{'p95':>8}{'p99':>8}{'mean':>8}   {'service p50':>11}")
    for case in cases:
        s = Stats(**reads[case.name])
        sv = f"{service[case.name]['p50_ms']:>11.2f}" if case.name in service else f"{'-':>11}"
        print(
            f"{case.name:<17}{case.describe():<44}{s.p50_ms:>8.2f}{s.p95_ms:>8.2f}{s.p99_ms:>8.2f}"
            f"{s.mean_ms:>8.2f}   {sv}"
        )
    print("(ms; 'service p50' = messages.service.list_messages called in-process, no HTTP: the database part)")
    print()
    print("where a request's time goes (each case alone; CPU from /proc, 10 ms ticks averaged):")
    print(f"{'case':<17}{'wall ms':>10}{'server CPU ms':>16}{'database CPU ms':>18}")
    for name, c in result["reads"]["cpu_per_request"].items():
        db_cpu = "-" if c["database_cpu_ms"] is None else f"{c['database_cpu_ms']:.2f}"
        print(f"{name:<17}{c['wall_ms']:>10.2f}{c['server_cpu_ms']:>16.2f}{db_cpu:>18}")
    print(line)
    print(f"ratio deep page / first page (p50, HTTP), target <= {TARGET_RATIO}:")
    for r in result["ratios"]:
        print(f"  {r['deep']:<12} / {r['first']:<11} = {r['ratio_p50']:.2f}   {'PASS' if r['pass'] else 'FAIL'}")
    print(f"  => {'PASS' if result['ratio_pass'] else 'FAIL'}")
    if result["reads"]["problems"]:
        print("  page checks:", "; ".join(result["reads"]["problems"]))
    print(line)
    writes = result["writes"]
    print(
        f"POST /v1/threads/{{id}}/messages: {writes['requests_per_level']} requests per level, "
        f"all clients writing to ONE fresh thread (the contended case)"
    )
    print(
        f"{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'srv CPU':>10}{'db CPU':>10}  errors"
    )
    for level in writes["levels"]:
        lat = level["latency"] or {}
        db_cpu = "-" if level["database_cpu_ms"] is None else f"{level['database_cpu_ms']:.2f}"
        print(
            f"{level['clients']:>8}{level['requests_per_s']:>10.0f}{lat.get('p50_ms', 0):>10.1f}"
            f"{lat.get('p99_ms', 0):>10.1f}{lat.get('mean_ms', 0):>10.1f}{level['server_cpu_ms']:>10.2f}"
            f"{db_cpu:>10}  {level['errors'] or '-'}"
        )
    print("(srv CPU, db CPU: CPU ms per POST of the server process and of the PostgreSQL backends)")
    v = writes["verification"]
    print(
        f"write thread after the run: {v['rows']:,} rows, seq {v['min_seq']}..{v['max_seq']}, "
        f"message_count {v['thread_message_count']:,}, 201s {v['created_201']:,} -> "
        f"{'consistent' if v['consistent'] else 'INCONSISTENT'}"
    )
    print(line)
    print(f"results: {result['results_file']}")


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------


async def run(cfg: Config, db: BenchDatabase, server: Server) -> dict[str, Any]:
    n = cfg.messages
    result: dict[str, Any] = {
        "database": cfg.db,
        "messages": n,
        "quick": cfg.quick,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "machine": machine_info(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    log(f"database: {db.name if cfg.db == 'postgres' else db.url}")
    await db.create()
    settings = db.settings()
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        result["database_version"] = await server_version(engine)
        fx = await create_fixture(engine)
        dialect = engine.dialect
    finally:
        await engine.dispose()
    log(f"fixture: workspace {fx.workspace_id}, read thread {fx.read_thread_id}, write thread {fx.write_thread_id}")

    log(f"bulk-loading {n:,} messages")
    if cfg.db == "postgres":
        result["load"] = await load_postgres(db, fx, n)
    else:
        try:
            result["load"] = await asyncio.to_thread(load_sqlite, db, dialect, fx, n)
        except asyncio.CancelledError:
            STOP.set()  # the thread stops at its next batch instead of loading everything first
            raise
    log(f"loaded {n:,} rows in {result['load']['load_s']:.1f} s ({result['load']['rows_per_s']:,.0f} rows/s)")

    cases = read_cases(n)
    engine = create_engine(settings)
    try:
        await verify_load(engine, fx, n)
        seqs = {s for c in cases for s in (c.after_seq, c.before_seq, c.first_seq, c.last_seq) if s is not None}
        ids = await ids_by_seq(engine, fx.read_thread_key, sorted(seqs))
        result["query_plans"] = await query_plans(engine, fx, n)
        log("timing the service call in-process (no HTTP)")
        service = await service_timings(engine, fx, cases, ids, cfg.service_requests)
    finally:
        await engine.dispose()

    log("starting the server")
    base_url = await server.start()
    log(f"server on {base_url} (pid {server.proc.pid if server.proc else '?'})")
    log(f"reads: {len(cases)} cases x {cfg.read_requests} requests")
    async with CpuMeter(server, db) as meter:
        http, problems, page_bytes = await measure_reads(
            base_url, fx, cases, ids, cfg.read_requests, cfg.read_warmup_rounds
        )
        cpu_cases = [c for c in cases if c.name in CPU_CASES]
        log(f"CPU per request: {len(cpu_cases)} cases x {cfg.read_requests} requests, one case at a time")
        read_cpu = await measure_read_cpu(base_url, fx, cpu_cases, ids, meter, cfg.read_requests)
        log(f"writes: {cfg.write_requests} POSTs per level at {', '.join(map(str, WRITE_LEVELS))} clients, one thread")
        levels, created = await measure_writes(base_url, fx, WRITE_LEVELS, cfg.write_requests, meter)
    server.stop()

    engine = create_engine(settings)
    try:
        verification = await verify_writes(engine, fx, created)
    finally:
        await engine.dispose()

    result["reads"] = {
        "limit": PAGE_LIMIT,
        "requests_per_case": cfg.read_requests,
        "warmup_rounds": cfg.read_warmup_rounds,
        "page_bytes": page_bytes,
        "cases": {c.name: {"request": c.describe(), "in_ratio": c.in_ratio} for c in cases},
        "http": {name: asdict(s) for name, s in http.items()},
        "service": {name: asdict(s) for name, s in service.items()},
        "cpu_per_request": read_cpu,
        "problems": problems,
    }
    result["ratios"] = ratios(http)
    result["ratio_target"] = TARGET_RATIO
    result["ratio_pass"] = all(r["pass"] for r in result["ratios"])
    result["writes"] = {
        "thread": "one fresh thread shared by all clients (contended)",
        "requests_per_level": cfg.write_requests,
        "levels": [asdict(level) for level in levels],
        "verification": verification,
    }
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    return result


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--messages",
        type=int,
        help="messages in the read thread (default 1,000,000 on "
        "PostgreSQL, 100,000 on SQLite; --quick: 20,000 / 5,000)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer requests: a smoke run")
    parser.add_argument("--requests", type=int, help="timed GETs per read case (default 200, --quick 30)")
    parser.add_argument("--writes", type=int, help="POSTs per concurrency level (default 2,000, --quick 200)")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help=f"server to create the bench database on (default {DEFAULT_POSTGRES_URL})",
    )
    args = parser.parse_args(argv)
    pg = args.db == "postgres"
    messages = args.messages or ((20_000 if pg else 5_000) if args.quick else (1_000_000 if pg else 100_000))
    if messages < 4 * PAGE_LIMIT:
        parser.error(f"--messages must be at least {4 * PAGE_LIMIT}")
    reads = args.requests or (30 if args.quick else 200)
    return Config(
        db=args.db,
        messages=messages,
        quick=args.quick,
        read_requests=reads,
        read_warmup_rounds=5 if args.quick else 20,
        write_requests=args.writes or (200 if args.quick else 2_000),
        service_requests=reads,
        postgres_url=normalize_database_url(args.postgres_url).replace("+asyncpg", ""),
    )


async def run_interruptible(cfg: Config, db: BenchDatabase, server: Server) -> dict[str, Any]:
    """``run``, cancelled (not interrupted at a random bytecode) on SIGTERM, as asyncio does for Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(cfg, db, server)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    db = BenchDatabase(cfg)
    log_dir = tempfile.TemporaryDirectory(prefix="threadline-bench-log-")
    server = Server(db.url, Path(log_dir.name) / "server.log")
    t0 = time.perf_counter()
    try:
        result = asyncio.run(run_interruptible(cfg, db, server))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        log("interrupted: cleaning up")
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    except Exception:
        tail = server.log_tail()
        if tail:
            print(f"--- server log (tail) ---\n{tail}", file=sys.stderr)
        raise
    finally:
        STOP.set()
        server.stop()
        db.drop()
        log_dir.cleanup()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{cfg.db}{'-quick' if cfg.quick else ''}-{stamp}.json"
    result["results_file"] = str(path.relative_to(BENCH_DIR.parent))
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_report(result, read_cases(cfg.messages))
    log(f"done in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
