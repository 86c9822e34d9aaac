"""The operator inbox and search at size: a workspace with 100,000 threads and 1,000,000 messages.

    .venv/bin/python bench/inbox.py --db postgres
    .venv/bin/python bench/inbox.py --db sqlite
    .venv/bin/python bench/inbox.py --db sqlite --quick      # 10,000 threads, 100,000 messages

Steps: a private database (``bench/common.py``: dropped at the end), the migrations, a workspace with an admin
key, three agents, ten operators, five tags and an api, an SMS and a WhatsApp integration (through the services);
then a bulk load of end users, threads (with their tags and assignees) and messages, the way
``bench/pagination.py`` loads (COPY on PostgreSQL, executemany on SQLite, every index and, on SQLite, the
full-text triggers in place), then ANALYZE. The threads:

* messages are spread over 60 days, each message going to a random thread (ten per thread on average, 1% of the
  threads have none), so message ids, times and threads interleave as in a live workspace;
* 5% are handed to a human, half of those answered by an operator last (the others need a human), 1% blocked;
* 30% assigned to one operator, 5% to two; 20% tagged; 60% on the API, 25% SMS, 15% WhatsApp;
* every message is read except each thread's last two from the end user (a fifth of the threads: all read);
* content: sentences of a 4,000-word vocabulary; "order" in about 10% of the messages, "refund" in 1%,
  "zebracorn" in 0.01%.

Then, each case a few hundred times, interleaved, after warm-up rounds, p50/p95 in ms:

* **service**: the call the console makes, in this process without HTTP (the server's own time for it):
  ``threads.inbox.inbox_page`` (50 rows, everything a row shows), ``threads.inbox.counts``,
  ``search.service.search_messages`` (20 results);
* **http**: the /v1 request against a real server process on loopback (``GET /v1/threads?order_by=
  last_message_at&limit=50``, ``GET /v1/thread_counts``, ``GET /v1/search/messages?q=...&limit=20``): the
  above plus HTTP, rendering and the client, on the same 2 cores.

Cases: the inbox's first page, the "needs a human" view's first page, a deep page (the cursor 90% down the
inbox), the counts of every view for one operator, and a search of one word ("refund"; "order" and
"zebracorn" as the common and the rare case). The counts are checked against what was loaded, and every
page's size and order. Results are printed and written to bench/results/inbox-<db>-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from threadline.agents.schemas import AgentCreate
from threadline.agents.service import create_agent
from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import WRITE_OPTION, create_engine, create_sessionmaker, is_sqlite
from threadline.kit.ids import uuid7
from threadline.models import EndUser, Integration, Message, Thread
from threadline.models.enums import ChannelType, Direction, MessageStatus, MessageType, Role, Scope, SentBy, Source
from threadline.models.thread import thread_assignees, thread_tags
from threadline.search import service as search
from threadline.tags.schemas import TagCreate
from threadline.tags.service import create_tag
from threadline.threads import inbox
from threadline.threads.schemas import ActivityKey, InboxView, ThreadFilters
from threadline.users.schemas import UserCreate
from threadline.users.service import create_user
from threadline.workspaces.service import create_workspace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, private_database
from tests.livesrv import live_server, server_log

RESULTS = Path(__file__).resolve().parent / "results"
PAGE = 50
SEARCH_PAGE = 20
DAYS = 60
WORDS = {"refund": 0.01, "order": 0.10, "zebracorn": 0.0001}
SEARCH_WORD = "refund"


@dataclass
class Fixture:
    workspace_id: int
    key: str
    agents: list[tuple[int, int]]  # (agent id, its current version id)
    users: list[tuple[int, str]]  # (user id, public id)
    tags: list[int]
    integrations: dict[ChannelType, int]


@dataclass
class Loaded:
    threads: int
    messages: int
    needs_human: int
    unassigned: int
    mine: int  # threads of the first operator
    load_s: float
    rows_per_s: float
    index_s: float = 0.0
    database_bytes: int = 0
    words: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------
# Fixture through the services
# --------------------------------------------------------------------------------------------------------


async def create_fixture(engine: AsyncEngine) -> Fixture:
    maker = create_sessionmaker(
        engine.execution_options(**{WRITE_OPTION: True}) if is_sqlite(engine) else engine, Settings()
    )
    async with maker() as session, session.begin():
        ws = await create_workspace(session, name=f"inbox-bench-{secrets.token_hex(3)}")
        _, key = await create_key(
            session, workspace_id=ws.id, scopes=(Scope.ADMIN,), name="bench", actor=Actor.system()
        )
        agents = []
        for i in range(3):
            created = await create_agent(
                session,
                workspace_id=ws.id,
                data=AgentCreate.model_validate(
                    {"name": f"agent {i}", "version": {"mode": "PROMPT", "model": "gpt-4o-mini"}}
                ),
            )
            agents.append((created.agent.id, created.agent.current_version_id))
        users = []
        for i in range(10):
            user = await create_user(
                session, workspace_id=ws.id, data=UserCreate(email=f"op{i}@example.com", first_name=f"Op{i}")
            )
            users.append((user.id, str(user.public_id)))
        tags = [
            (await create_tag(session, workspace_id=ws.id, data=TagCreate(name=name))).id
            for name in ("vip", "billing", "bug", "sales", "later")
        ]
        # Rows as they are, without secrets (encrypting them needs the server's keys): the inbox reads only the type.
        integrations = {}
        for channel in ChannelType:
            row = Integration(workspace_id=ws.id, type=channel, name=channel.value, settings={}, secret_names=[])
            session.add(row)
            await session.flush()
            integrations[channel] = row.id
    return Fixture(ws.id, key, agents, users, tags, integrations)


# --------------------------------------------------------------------------------------------------------
# What to load: a deterministic workspace (seeded), streamed in the order of the message ids
# --------------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    n_threads: int
    n_messages: int
    start: datetime
    counts: list[int]  # messages per thread
    first_index: list[int]  # index (time order) of each thread's first message, -1 for none

    def at(self, index: int) -> datetime:
        return self.start + timedelta(seconds=DAYS * 86400 * index / self.n_messages)


def plan(n_threads: int, n_messages: int) -> Plan:
    with_messages = n_threads - n_threads // 100  # the last 1% get none
    rng = random.Random(7)
    counts = [0] * n_threads
    first = [-1] * n_threads
    for i in range(n_messages):
        t = rng.randrange(with_messages)
        if counts[t] == 0:
            first[t] = i
        counts[t] += 1
    start = datetime.now(UTC) - timedelta(days=DAYS, hours=1)
    return Plan(n_threads, n_messages, start, counts, first)


def thread_traits(t: int) -> dict[str, Any]:
    return {
        "active": t % 20 != 1,
        "answered": t % 40 == 1,  # handed over and an operator answered last
        "blocked": t % 100 == 7,
        "channel": ChannelType.API if t % 20 < 12 else ChannelType.SMS if t % 20 < 17 else ChannelType.WHATSAPP,
        "assigned": [(t // 10) % 10]
        if t % 10 in (2, 3, 4)
        else [(t // 20) % 10, (t // 20 + 1) % 10]
        if t % 20 == 5
        else [],
        "tag": (t // 5) % 5 if t % 5 == 0 else None,
        "all_read": t % 5 == 3,
    }


_FIRST = ["Ada", "Grace", "Linus", "Maria", "Jean", "Noor", "Kofi", "Yuki", "Lena", "Omar", "Priya", "Tomas"]
_LAST = ["Hopper", "Lovelace", "Curie", "Okafor", "Tanaka", "Novak", "Haddad", "Silva", "Meyer", "Rossi"]


def end_user_name(t: int) -> str:
    return f"{_FIRST[t % len(_FIRST)]} {_LAST[(t // len(_FIRST)) % len(_LAST)]} {t}"


def sentences(count: int) -> list[str]:
    rng = random.Random(11)
    syllables = ["ka", "lo", "mi", "ne", "to", "ra", "su", "vi", "de", "po", "an", "el", "or", "us", "ip"]
    vocab = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(6000)})[:4000]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]  # Zipf-like: a few words are everywhere
    return [" ".join(rng.choices(vocab, weights, k=rng.randint(6, 30))).capitalize() + "." for _ in range(count)]


def thread_rows(fx: Fixture, p: Plan, base: dict[str, int]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) for each end user, thread, tag and assignment."""
    now = datetime.now(UTC)
    rng = random.Random(5)
    for t in range(p.n_threads):
        tr = thread_traits(t)
        channel = tr["channel"]
        created = (
            p.at(p.first_index[t]) - timedelta(seconds=1)
            if p.counts[t]
            else p.start + timedelta(seconds=rng.randrange(DAYS * 86400))
        )
        address = None if channel is ChannelType.API else f"+4179{t:07d}"
        user_id, thread_id = base["end_users"] + t, base["threads"] + t
        yield (
            "end_users",
            (user_id, uuid7(), fx.workspace_id, end_user_name(t), channel.value, address, {}, created, created),
        )
        agent_id, version_id = fx.agents[t % len(fx.agents)]
        yield (
            "threads",
            (
                thread_id,
                uuid7(),
                fx.workspace_id,
                base["thread_number"] + t,
                agent_id,
                version_id,
                user_id,
                fx.integrations[channel],
                tr["active"],
                tr["blocked"],
                {},
                0,
                0,
                None,  # last_message_at: set from the messages once they are loaded
                created,
                now,
            ),
        )
        for u in tr["assigned"]:
            yield "thread_assignees", (thread_id, fx.users[u][0], created)
        if tr["tag"] is not None:
            yield "thread_tags", (thread_id, fx.tags[tr["tag"]], created)


THREAD_COLUMNS = {
    "end_users": ("id", "public_id", "workspace_id", "display_name", "channel", "address", "metadata", "created_at",
                  "updated_at"),
    "threads": ("id", "public_id", "workspace_id", "number", "agent_id", "agent_version_id", "end_user_id",
                "integration_id", "active", "blocked", "metadata", "message_count", "last_seq", "last_message_at",
                "created_at", "updated_at"),
    "thread_assignees": ("thread_id", "user_id", "created_at"),
    "thread_tags": ("thread_id", "tag_id", "created_at"),
}  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "public_id", "workspace_id", "thread_id", "seq", "number", "role", "type", "content", "attachments",
    "metadata", "direction", "sent_by", "sent_by_user_id", "source", "status", "sent_at", "read_at", "integration_id",
    "created_at", "updated_at",
)  # fmt: skip


def message_rows(fx: Fixture, p: Plan, base: dict[str, int], words: dict[str, int]) -> Iterator[tuple[Any, ...]]:
    """Every message, in the order of their ids (and times), each to its thread as ``plan`` chose."""
    rng = random.Random(7)  # the same draws as plan(): the same thread for each message
    content_rng = random.Random(13)
    texts = sentences(50_000)
    with_messages = p.n_threads - p.n_threads // 100
    seqs = [0] * p.n_threads
    for i in range(p.n_messages):
        t = rng.randrange(with_messages)
        seqs[t] += 1
        seq, count = seqs[t], p.counts[t]
        tr = thread_traits(t)
        at = p.at(i)
        operator = tr["answered"] and seq == count
        user = seq % 2 == 1 and not operator
        content = texts[content_rng.randrange(len(texts))]
        for word, share in WORDS.items():
            if content_rng.random() < share:
                content = f"{content} {word.capitalize() if content_rng.random() < 0.5 else word}, please."
                words[word] += 1
        unread = user and not tr["all_read"] and seq > count - 4
        channel = tr["channel"]
        outbound_status = MessageStatus.SENT if channel is ChannelType.API else MessageStatus.DELIVERED
        yield (
            base["messages"] + i,
            uuid7(),
            fx.workspace_id,
            base["threads"] + t,
            seq,
            base["message_number"] + i,
            (Role.USER if user else Role.ASSISTANT).value,
            MessageType.TEXT.value,
            content,
            [],
            {},
            (Direction.INBOUND if user else Direction.OUTBOUND).value,
            (SentBy.END_USER if user else SentBy.OPERATOR if operator else SentBy.AGENT).value,
            fx.users[0][0] if operator else None,
            (Source.API if channel is ChannelType.API else Source(channel.value)).value,
            (MessageStatus.RECEIVED if user else outbound_status).value,
            None if user else at,
            None if unread else at + timedelta(minutes=1),
            fx.integrations[channel],
            at,
            at,
        )


def expected(fx: Fixture, p: Plan) -> dict[str, int]:
    """The views' sizes, from the plan."""
    needs = unassigned = mine = 0
    for t in range(p.n_threads):
        tr = thread_traits(t)
        if not tr["active"] and not (tr["answered"] and p.counts[t]):
            needs += 1  # handed over: the last word is the end user's or the agent's (or there is none)
        if not tr["assigned"]:
            unassigned += 1
        if 0 in tr["assigned"]:
            mine += 1
    return {"needs_human": needs, "unassigned": unassigned, "mine": mine}


# --------------------------------------------------------------------------------------------------------
# Bulk load
# --------------------------------------------------------------------------------------------------------


def _batches(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _bases_pg(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        "end_users": await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM end_users"),
        "threads": await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM threads"),
        "messages": await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM messages"),
        "thread_number": 1,
        "message_number": 1,
    }


def _json_as_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """asyncpg's COPY takes jsonb as text."""
    return tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in row)


async def load_postgres(url: str, fx: Fixture, p: Plan) -> Loaded:
    conn = await asyncpg.connect(url)
    words = dict.fromkeys(WORDS, 0)
    try:
        t0 = time.perf_counter()
        base = await _bases_pg(conn)
        async with conn.transaction():
            by_table: dict[str, list[tuple[Any, ...]]] = {name: [] for name in THREAD_COLUMNS}
            for table, row in thread_rows(fx, p, base):
                by_table[table].append(_json_as_text(row))
            for table in THREAD_COLUMNS:
                await conn.copy_records_to_table(table, records=by_table[table], columns=THREAD_COLUMNS[table])
            log(f"  {p.n_threads:,} end users and threads copied")
            loaded = 0
            for batch in _batches(message_rows(fx, p, base, words), 50_000):
                records = [_json_as_text(r) for r in batch]
                await conn.copy_records_to_table("messages", records=records, columns=MESSAGE_COLUMNS)
                loaded += len(batch)
                if loaded % 200_000 == 0 or loaded == p.n_messages:
                    rate = loaded / (time.perf_counter() - t0)
                    log(f"  copied {loaded:,} / {p.n_messages:,} messages ({rate:,.0f}/s)")
            await _finish_threads(conn, fx, p, base, dollar=True)
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        index_s = time.perf_counter() - t1
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return _loaded(fx, p, load_s, index_s, size, words)


async def _finish_threads(conn: Any, fx: Fixture, p: Plan, base: dict[str, int], *, dollar: bool) -> None:
    """Each thread's counters and last message time from its messages; the workspace's numbers past them; the
    id sequences past the rows loaded with explicit ids (PostgreSQL)."""
    sql = (
        "UPDATE threads SET message_count = m.n, last_seq = m.n, last_message_at = m.last FROM "
        "(SELECT thread_id, count(*) AS n, max(created_at) AS last FROM messages GROUP BY thread_id) AS m "
        f"WHERE threads.id = m.thread_id AND threads.workspace_id = {fx.workspace_id}"
    )
    counters = (
        f"UPDATE workspace_counters SET last_thread_number = {p.n_threads}, last_message_number = {p.n_messages} "
        f"WHERE workspace_id = {fx.workspace_id}"
    )
    if dollar:
        await conn.execute(sql)
        await conn.execute(counters)
        for table in ("end_users", "threads", "messages"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    else:
        conn.execute(sql)
        conn.execute(counters)


def _loaded(fx: Fixture, p: Plan, load_s: float, index_s: float, size: int, words: dict[str, int]) -> Loaded:
    exp = expected(fx, p)
    rows = p.n_threads * 2 + p.n_messages
    return Loaded(
        threads=p.n_threads,
        messages=p.n_messages,
        needs_human=exp["needs_human"],
        unassigned=exp["unassigned"],
        mine=exp["mine"],
        load_s=load_s,
        rows_per_s=rows / load_s,
        index_s=index_s,
        database_bytes=size,
        words=words,
    )


def load_sqlite(path: Path, dialect: Any, fx: Fixture, p: Plan) -> Loaded:
    """executemany through SQLAlchemy's bind processors (rows read back as ORM rows), the FTS triggers firing."""
    tables = {"end_users": EndUser.__table__, "threads": Thread.__table__, "thread_assignees": thread_assignees,
              "thread_tags": thread_tags, "messages": Message.__table__}  # fmt: skip
    columns = {**THREAD_COLUMNS, "messages": MESSAGE_COLUMNS}
    processors = {
        name: [tables[name].c[c].type.bind_processor(dialect) for c in cols] for name, cols in columns.items()
    }

    def bound(name: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(f(v) if f is not None and v is not None else v for f, v in zip(processors[name], row, strict=True))

    def insert(name: str) -> str:
        return f"INSERT INTO {name} ({', '.join(columns[name])}) VALUES ({', '.join('?' for _ in columns[name])})"

    words = dict.fromkeys(WORDS, 0)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-524288")
        conn.execute("PRAGMA temp_store=MEMORY")
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        base = {
            "end_users": conn.execute("SELECT coalesce(max(id), 0) + 1 FROM end_users").fetchone()[0],
            "threads": conn.execute("SELECT coalesce(max(id), 0) + 1 FROM threads").fetchone()[0],
            "messages": conn.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()[0],
            "thread_number": 1,
            "message_number": 1,
        }
        by_table: dict[str, list[tuple[Any, ...]]] = {name: [] for name in THREAD_COLUMNS}
        for table, row in thread_rows(fx, p, base):
            by_table[table].append(bound(table, row))
        for table in THREAD_COLUMNS:
            conn.executemany(insert(table), by_table[table])
        log(f"  {p.n_threads:,} end users and threads inserted")
        loaded = 0
        for batch in _batches(message_rows(fx, p, base, words), 20_000):
            conn.executemany(insert("messages"), [bound("messages", r) for r in batch])
            loaded += len(batch)
            if loaded % 200_000 == 0 or loaded == p.n_messages:
                log(f"  inserted {loaded:,} / {p.n_messages:,} messages ({loaded / (time.perf_counter() - t0):,.0f}/s)")
        _finish_sqlite(conn, fx, p)
        conn.execute("COMMIT")
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn.execute("ANALYZE")
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        index_s = time.perf_counter() - t1
    finally:
        conn.close()
    return _loaded(fx, p, load_s, index_s, path.stat().st_size, words)


def _finish_sqlite(conn: sqlite3.Connection, fx: Fixture, p: Plan) -> None:
    conn.execute(
        "UPDATE threads SET message_count = m.n, last_seq = m.n, last_message_at = m.last FROM "
        "(SELECT thread_id, count(*) AS n, max(created_at) AS last FROM messages GROUP BY thread_id) AS m "
        "WHERE threads.id = m.thread_id AND threads.workspace_id = ?",
        (fx.workspace_id,),
    )
    conn.execute(
        "UPDATE workspace_counters SET last_thread_number = ?, last_message_number = ? WHERE workspace_id = ?",
        (p.n_threads, p.n_messages, fx.workspace_id),
    )


# --------------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------------


def stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, round(0.95 * len(ms)) - 1)], 2),
        "min_ms": round(ms[0], 2),
    }


async def interleaved(cases: dict[str, Callable[[], Awaitable[Any]]], rounds: int, warmup: int) -> dict[str, Any]:
    """Each case once per round, in a shuffled order: the machine's noise falls on every case alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    rng = random.Random(3)
    for r in range(warmup + rounds):
        names = list(cases)
        rng.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            await cases[name]()
            if r >= warmup:
                samples[name].append(time.perf_counter() - t0)
    return {name: stats(s) for name, s in samples.items()}


async def deep_cursor(engine: AsyncEngine, fx: Fixture, rank: int) -> str:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT coalesce(last_message_at, created_at) AS at, number FROM threads WHERE workspace_id = :ws "
                    "ORDER BY coalesce(last_message_at, created_at) DESC, number DESC LIMIT 1 OFFSET :rank"
                ),
                {"ws": fx.workspace_id, "rank": rank},
            )
        ).one()
    at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
    return inbox.encode_cursor(ActivityKey(at.replace(tzinfo=UTC) if at.tzinfo is None else at, row.number))


async def service_cases(engine: AsyncEngine, fx: Fixture, loaded: Loaded, deep: str) -> dict[str, Any]:
    maker = create_sessionmaker(engine, Settings())
    user = fx.users[0][1]
    ws = fx.workspace_id

    async def page(**kwargs: Any) -> Any:
        async with maker() as session:
            result = await inbox.inbox_page(session, workspace_id=ws, limit=PAGE, **kwargs)
        assert len(result.rows) == PAGE
        activity = [r.last_activity_at for r in result.rows]
        assert activity == sorted(activity, reverse=True)
        return result

    async def counts() -> Any:
        async with maker() as session:
            found = await inbox.counts(session, workspace_id=ws, filters=ThreadFilters(assigned_user_id=user))
        assert (found.all, found.needs_human, found.unassigned, found.mine) == (
            loaded.threads,
            loaded.needs_human,
            loaded.unassigned,
            loaded.mine,
        ), found
        return found

    def searching(word: str) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            async with maker() as session:
                found = await search.search_messages(session, workspace_id=ws, q=word, limit=SEARCH_PAGE)
            assert len(found.items) == min(SEARCH_PAGE, loaded.words[word]), (word, len(found.items))
            return found

        return run

    needs = ThreadFilters(view=InboxView.NEEDS_HUMAN)
    return {
        "inbox first page": lambda: page(filters=ThreadFilters()),
        "needs_human first page": lambda: page(filters=needs),
        "inbox deep page (90%)": lambda: page(filters=ThreadFilters(), before=deep),
        "mine first page": lambda: page(filters=ThreadFilters(view=InboxView.MINE, assigned_user_id=user)),
        "counts (4 views)": counts,
        f"search '{SEARCH_WORD}'": searching(SEARCH_WORD),
        "search 'order' (10%)": searching("order"),
        "search 'zebracorn' (rare)": searching("zebracorn"),
    }


def http_cases(client: httpx.AsyncClient, fx: Fixture, deep: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    user = fx.users[0][1]

    def get(path: str, **params: Any) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            r = await client.get(path, params=params)
            assert r.status_code == 200, f"{r.url}: {r.text}\n{server_log(str(client.base_url).rstrip('/'))}"
            return r

        return run

    threads = {"order_by": "last_message_at", "limit": PAGE}
    return {
        "inbox first page": get("/v1/threads", **threads),
        "needs_human first page": get("/v1/threads", **threads, view="needs_human"),
        "inbox deep page (90%)": get("/v1/threads", **threads, before=deep),
        "mine first page": get("/v1/threads", **threads, view="mine", assigned_user_id=user),
        "counts (4 views)": get("/v1/thread_counts", assigned_user_id=user),
        f"search '{SEARCH_WORD}'": get("/v1/search/messages", q=SEARCH_WORD, limit=SEARCH_PAGE),
        "search 'order' (10%)": get("/v1/search/messages", q="order", limit=SEARCH_PAGE),
        "search 'zebracorn' (rare)": get("/v1/search/messages", q="zebracorn", limit=SEARCH_PAGE),
    }


async def plans(engine: AsyncEngine, cases: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, list[str]]:
    """The plans of the statements each service case runs, as the database runs them (the statements captured
    with their parameters, then explained: EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite)."""
    sqlite = is_sqlite(engine)
    explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, COSTS OFF) "
    found: dict[str, list[str]] = {}
    for name, call in cases.items():
        captured: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                captured.append((statement, parameters))  # noqa: B023 - the listener is removed right after

        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            await call()
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
        found[name] = []
        async with engine.connect() as conn:
            for statement, parameters in captured:
                rows = (await conn.exec_driver_sql(explain + statement, parameters)).all()
                found[name].append("\n".join(str(r[-1]) if sqlite else str(r[0]) for r in rows))
    return found


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        "?",
    )
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    settings = Settings(database_url=url, auto_migrate=False, bootstrap=False, log_level="warning")
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        fx = await create_fixture(engine)
        dialect = engine.dialect
    finally:
        await engine.dispose()
    p = plan(args.threads, args.messages)
    log(f"loading {args.threads:,} threads and {args.messages:,} messages")
    if args.db == "postgres":
        loaded = await load_postgres(url, fx, p)
    else:
        loaded = await asyncio.to_thread(load_sqlite, Path(url.removeprefix("sqlite:///")), dialect, fx, p)
    log(f"loaded in {loaded.load_s:.0f} s ({loaded.rows_per_s:,.0f} rows/s), analyze {loaded.index_s:.0f} s")
    result: dict[str, Any] = {
        "database": args.db,
        "quick": args.quick,
        "threads": loaded.threads,
        "messages": loaded.messages,
        "machine": machine(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "load": loaded.__dict__,
    }
    engine = create_engine(settings)
    try:
        deep = await deep_cursor(engine, fx, int(loaded.threads * 0.9))
        cases = await service_cases(engine, fx, loaded, deep)
        result["plans"] = await plans(engine, cases)
        log(f"service calls in-process: {args.requests} rounds")
        result["service"] = await interleaved(cases, args.requests, args.warmup)
    finally:
        await engine.dispose()
    log("HTTP against a server process")
    with live_server(url) as base:
        headers = {"Authorization": f"Bearer {fx.key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            result["http"] = await interleaved(http_cases(client, fx, deep), args.requests, args.warmup)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"\ninbox bench, {result['database']}: {result['threads']:,} threads, {result['messages']:,} messages "
        f"(load average {result['loadavg_start']} -> {result['loadavg_end']})"
    )
    load = result["load"]
    print(
        f"load {load['load_s']:.0f} s ({load['rows_per_s']:,.0f} rows/s), "
        f"database {load['database_bytes'] / 2**20:,.0f} MiB"
    )
    print(f"{'case':30} {'service p50':>12} {'p95':>8} {'http p50':>10} {'p95':>8}")
    for name, s in result["service"].items():
        h = result["http"][name]
        print(f"{name:30} {s['p50_ms']:>12.2f} {s['p95_ms']:>8.2f} {h['p50_ms']:>10.2f} {h['p95_ms']:>8.2f}")
    for name in ("inbox deep page (90%)", "needs_human first page", f"search '{SEARCH_WORD}'"):
        print(f"\n-- plan of the first statement of {name}\n{result['plans'][name][0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--quick", action="store_true", help="10,000 threads, 100,000 messages, fewer rounds")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--messages", type=int)
    parser.add_argument("--requests", type=int, help="timed rounds per case (default 200, --quick 40)")
    args = parser.parse_args()
    args.threads = args.threads or (10_000 if args.quick else 100_000)
    args.messages = args.messages or (100_000 if args.quick else 1_000_000)
    args.requests = args.requests or (40 if args.quick else 200)
    args.warmup = 5 if args.quick else 20
    t0 = time.perf_counter()
    with private_database(args.db) as url:
        result = asyncio.run(run(args, url))
    result["wall_s"] = round(time.perf_counter() - t0)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"inbox-{args.db}{'-quick' if args.quick else ''}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    report(result)
    log(f"done in {result['wall_s']} s; {path.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
