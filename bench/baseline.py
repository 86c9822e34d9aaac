"""The bare baseline of bench/service.py: the least a hand-written service would do for threadline's hot paths.

It reads and writes threadline's own ``messages`` table (the same database, the same rows), with no auth, no
tenant scoping, no events, no idempotency, no rate limits, no middleware:

* ``GET /threads/{thread_id}/messages?limit=100[&after=<message id>]``: the keyset page of 100 (oldest first,
  as /v1's default order), one statement (thread and cursor resolved by subqueries; the operator's and the
  replied-to message's public ids by LEFT JOINs), rendered with the same 32 keys /v1 renders per message and
  the same envelope (``object``, ``data``, ``first_id``, ``last_id``, ``has_more``), encoded with orjson.
* ``POST /threads/{thread_id}/messages`` with ``{"content": ..., "role": "user"}``: one message appended to
  the thread, numbered as threadline numbers it (``seq`` = the thread's ``last_seq + 1`` under the thread's
  row lock, so one thread's messages commit in ``seq`` order; ``number`` from a block of the workspace's
  counter held in memory, as threadline's ``workspaces.numbers`` does on PostgreSQL), answered 201 with the
  message as the page renders it. PostgreSQL: one statement in autocommit (``WITH t AS (UPDATE threads ...
  RETURNING ...) INSERT INTO messages ... SELECT ... FROM t RETURNING ...``); SQLite: ``BEGIN IMMEDIATE``,
  UPDATE ... RETURNING, INSERT ... RETURNING, COMMIT on the one write connection.
* ``GET /healthz``: ``{"status":"ok"}``, nothing else (the "bare endpoint").

PostgreSQL through asyncpg (a pool of up to 30 connections, like threadline's 10 + 20 overflow; jsonb decoded
with orjson); SQLite through aiosqlite (WAL, ``synchronous=NORMAL`` as threadline sets them; one write
connection behind an asyncio lock, four read connections).

Served by bench/service.py as ``uvicorn baseline:create_app --factory --app-dir bench`` (or granian), with
``BASELINE_DATABASE_URL`` set to ``postgresql://...`` or ``sqlite:///path``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

PAGE = 100
NUMBER_BLOCK = 1000
JSON_OPTIONS = orjson.OPT_UTC_Z  # "...Z", as threadline (pydantic-core) writes UTC times

# A /v1 message has 32 keys; the columns they come from, per database, below.
_PLAIN = (
    "number", "role", "type", "content", "media_url", "direction", "sent_by", "source", "status",
    "external_id", "provider_account_id", "segments", "price", "price_currency", "error_code", "error_message",
)  # fmt: skip
_TIMES = ("read_at", "sent_at", "delivered_at", "failed_at", "created_at", "updated_at")
_JSON = ("attachments", "metadata", "tool_calls", "iterations")


def _uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7), like threadline's public ids."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | int.from_bytes(os.urandom(10), "big") & ((1 << 76) - 1)
    return uuid.UUID(int=value & ~(0b11 << 62) | (0b10 << 62))


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=JSON_OPTIONS)


class NumberBlocks:
    """Message numbers of each workspace, taken from ``workspace_counters`` a block at a time (one statement per
    NUMBER_BLOCK messages) and handed out from memory; one process serves, so they never collide."""

    def __init__(self, reserve: Callable[[int, int], Awaitable[int]]) -> None:
        self._reserve = reserve
        self._next: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._lock = asyncio.Lock()

    async def take(self, workspace_id: int) -> int:
        if self._next.get(workspace_id, 1) > self._last.get(workspace_id, 0):
            async with self._lock:
                if self._next.get(workspace_id, 1) > self._last.get(workspace_id, 0):
                    last = await self._reserve(workspace_id, NUMBER_BLOCK)
                    self._next[workspace_id], self._last[workspace_id] = last - NUMBER_BLOCK + 1, last
        number = self._next[workspace_id]
        self._next[workspace_id] = number + 1
        return number


# ------------------------------------------------------------------------------------------------ PostgreSQL

_PG_MESSAGE = """'message' AS object, {m}public_id::text AS id, {m}number, {thread} AS thread_id, {m}role, {m}type,
       {m}content, {m}media_url, {m}attachments, {m}metadata, {m}direction, {m}sent_by, {user} AS sent_by_user_id,
       {m}source, {m}status, {m}read_at IS NOT NULL AS read, {m}read_at, {m}sent_at, {m}delivered_at, {m}failed_at,
       {m}external_id, {m}provider_account_id, {m}segments, {m}price, {m}price_currency, {m}error_code,
       {m}error_message, {m}tool_calls, {m}iterations, {reply} AS in_response_to, {m}created_at, {m}updated_at"""
_PG_PAGE = f"""
SELECT {_PG_MESSAGE.format(m="m.", thread="$4::text", user="u.public_id::text", reply="r.public_id::text")}
FROM messages m
LEFT JOIN users u ON u.id = m.sent_by_user_id
LEFT JOIN messages r ON r.id = m.in_response_to_id
WHERE m.thread_id = (SELECT id FROM threads WHERE public_id = $1)
  AND m.seq > COALESCE((SELECT c.seq FROM messages c
                        WHERE c.public_id = $2 AND c.thread_id = (SELECT id FROM threads WHERE public_id = $1)), 0)
ORDER BY m.seq
LIMIT $3
"""
_PG_INSERT = f"""
WITH t AS (
    UPDATE threads SET last_seq = last_seq + 1, message_count = message_count + 1, last_message_at = $2,
                       updated_at = $2
    WHERE id = $1
    RETURNING id, workspace_id, last_seq, integration_id
)
INSERT INTO messages (public_id, workspace_id, thread_id, seq, number, role, type, content, attachments, metadata,
                      direction, sent_by, source, status, integration_id, created_at, updated_at)
SELECT $3, t.workspace_id, t.id, t.last_seq, $4, 'user', 'text', $5, '[]'::jsonb, '{{}}'::jsonb,
       'INBOUND', 'end_user', 'api', 'RECEIVED', t.integration_id, $2, $2
FROM t
RETURNING {_PG_MESSAGE.format(m="", thread="$6::text", user="NULL::text", reply="NULL::text")}
"""


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None
        self.threads: dict[str, tuple[int, int]] = {}  # public id -> (id, workspace id): threads never move
        self.numbers = NumberBlocks(self._reserve)

    async def open(self) -> None:
        import asyncpg

        async def init(conn: Any) -> None:
            await conn.set_type_codec(
                "jsonb", schema="pg_catalog", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads
            )

        self.pool = await asyncpg.create_pool(self.url, min_size=2, max_size=30, init=init)

    async def close(self) -> None:
        await self.pool.close()

    async def _reserve(self, workspace_id: int, block: int) -> int:
        last = await self.pool.fetchval(
            "UPDATE workspace_counters SET last_message_number = last_message_number + $2 "
            "WHERE workspace_id = $1 RETURNING last_message_number",
            workspace_id,
            block,
        )
        if last is None:
            raise LookupError(f"workspace {workspace_id} has no counters row")
        return int(last)

    async def page(self, thread: uuid.UUID, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]] | None:
        rows = await self.pool.fetch(_PG_PAGE, thread, after, limit + 1, str(thread))
        if not rows and await self.pool.fetchval("SELECT id FROM threads WHERE public_id = $1", thread) is None:
            return None
        return [dict(r) for r in rows]

    async def _thread(self, public_id: uuid.UUID) -> tuple[int, int] | None:
        key = str(public_id)
        known = self.threads.get(key)
        if known is None:
            row = await self.pool.fetchrow("SELECT id, workspace_id FROM threads WHERE public_id = $1", public_id)
            if row is None:
                return None
            known = self.threads[key] = (row["id"], row["workspace_id"])
        return known

    async def append(self, thread: uuid.UUID, content: str) -> dict[str, Any] | None:
        key = str(thread)
        known = await self._thread(thread)
        if known is None:
            return None
        thread_id, workspace_id = known
        number = await self.numbers.take(workspace_id)
        row = await self.pool.fetchrow(_PG_INSERT, thread_id, datetime.now(UTC), _uuid7(), number, content, key)
        return dict(row) if row is not None else None


# ---------------------------------------------------------------------------------------------------- SQLite

_SQ_TIME = "replace({0}, ' ', 'T') || 'Z'"  # naive UTC text as SQLAlchemy stores it -> ISO 8601 with Z
_SQ_COLUMNS = ", ".join(
    [
        "m.public_id",
        *(f"m.{c}" for c in _PLAIN),
        *(f"m.{c}" for c in _JSON),
        *(_SQ_TIME.format(f"m.{c}") for c in _TIMES),
        "u.public_id",
        "r.public_id",
    ]
)
_SQ_PAGE = f"""
SELECT {_SQ_COLUMNS}
FROM messages m
LEFT JOIN users u ON u.id = m.sent_by_user_id
LEFT JOIN messages r ON r.id = m.in_response_to_id
WHERE m.thread_id = (SELECT id FROM threads WHERE public_id = :thread)
  AND m.seq > COALESCE(
        (SELECT c.seq FROM messages c
         WHERE c.public_id = :after AND c.thread_id = (SELECT id FROM threads WHERE public_id = :thread)), 0)
ORDER BY m.seq
LIMIT :limit
"""
_SQ_INSERT = f"""
INSERT INTO messages (public_id, workspace_id, thread_id, seq, number, role, type, content, attachments, metadata,
                      direction, sent_by, source, status, integration_id, created_at, updated_at)
VALUES (:public_id, :workspace_id, :thread_id, :seq, :number, 'user', 'text', :content, '[]', '{{}}',
        'INBOUND', 'end_user', 'api', 'RECEIVED', :integration_id, :now, :now)
RETURNING {_SQ_COLUMNS.replace("m.", "").replace("u.public_id", "NULL").replace("r.public_id", "NULL")}
"""


def _dashed(hex32: str | None) -> str | None:
    """SQLAlchemy's Uuid stores 32 hex digits on SQLite; /v1 shows the dashed form."""
    if hex32 is None:
        return None
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def _sq_message(row: Any, thread_id: str) -> dict[str, Any]:
    plain = dict(zip(_PLAIN, row[1:17], strict=True))
    loads = orjson.loads
    attachments, metadata, tool_calls, iterations = (loads(v) if v is not None else None for v in row[17:21])
    read_at, sent_at, delivered_at, failed_at, created_at, updated_at = row[21:27]
    return {
        "object": "message",
        "id": _dashed(row[0]),
        "number": plain["number"],
        "thread_id": thread_id,
        "role": plain["role"],
        "type": plain["type"],
        "content": plain["content"],
        "media_url": plain["media_url"],
        "attachments": attachments,
        "metadata": metadata,
        "direction": plain["direction"],
        "sent_by": plain["sent_by"],
        "sent_by_user_id": _dashed(row[27]),
        "source": plain["source"],
        "status": plain["status"],
        "read": read_at is not None,
        "read_at": read_at,
        "sent_at": sent_at,
        "delivered_at": delivered_at,
        "failed_at": failed_at,
        "external_id": plain["external_id"],
        "provider_account_id": plain["provider_account_id"],
        "segments": plain["segments"],
        "price": plain["price"],
        "price_currency": plain["price_currency"],
        "error_code": plain["error_code"],
        "error_message": plain["error_message"],
        "tool_calls": tool_calls,
        "iterations": iterations,
        "in_response_to": _dashed(row[28]),
        "created_at": created_at,
        "updated_at": updated_at,
    }


class SqliteStore:
    READERS = 4

    def __init__(self, path: str) -> None:
        self.path = path
        self.writer: Any = None
        self.write_lock = asyncio.Lock()
        self.readers: asyncio.Queue[Any] = asyncio.Queue()
        self.threads: dict[str, tuple[int, int]] = {}
        self.numbers = NumberBlocks(self._reserve)

    async def _connect(self) -> Any:
        import aiosqlite

        conn = await aiosqlite.connect(self.path, isolation_level=None)  # autocommit; BEGIN written out
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000", "foreign_keys=ON"):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    async def open(self) -> None:
        self.writer = await self._connect()
        for _ in range(self.READERS):
            self.readers.put_nowait(await self._connect())

    async def close(self) -> None:
        await self.writer.close()
        while not self.readers.empty():
            await self.readers.get_nowait().close()

    async def _reserve(self, workspace_id: int, block: int) -> int:
        async with self.write_lock:
            cur = await self.writer.execute(
                "UPDATE workspace_counters SET last_message_number = last_message_number + ? "
                "WHERE workspace_id = ? RETURNING last_message_number",
                (block, workspace_id),
            )
            row = await cur.fetchone()
            await cur.close()
        if row is None:
            raise LookupError(f"workspace {workspace_id} has no counters row")
        return int(row[0])

    async def page(self, thread: uuid.UUID, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]] | None:
        conn = await self.readers.get()
        try:
            params = {"thread": thread.hex, "after": after.hex if after else None, "limit": limit + 1}
            rows = await conn.execute_fetchall(_SQ_PAGE, params)
            if not rows:
                found = await conn.execute_fetchall("SELECT id FROM threads WHERE public_id = ?", (thread.hex,))
                if not found:
                    return None
        finally:
            self.readers.put_nowait(conn)
        name = str(thread)
        return [_sq_message(r, name) for r in rows]

    async def append(self, thread: uuid.UUID, content: str) -> dict[str, Any] | None:
        key = str(thread)
        known = self.threads.get(key)
        if known is None:
            rows = await self.writer.execute_fetchall(
                "SELECT id, workspace_id FROM threads WHERE public_id = ?", (thread.hex,)
            )
            if not rows:
                return None
            known = self.threads[key] = (rows[0][0], rows[0][1])
        number = await self.numbers.take(known[1])
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        async with self.write_lock:
            await self.writer.execute("BEGIN IMMEDIATE")
            try:
                cur = await self.writer.execute(
                    "UPDATE threads SET last_seq = last_seq + 1, message_count = message_count + 1, "
                    "last_message_at = :now, updated_at = :now WHERE id = :id "
                    "RETURNING id, workspace_id, last_seq, integration_id",
                    {"now": now, "id": known[0]},
                )
                claimed = await cur.fetchone()
                await cur.close()
                cur = await self.writer.execute(
                    _SQ_INSERT,
                    {
                        "public_id": _uuid7().hex,
                        "workspace_id": claimed[1],
                        "thread_id": claimed[0],
                        "seq": claimed[2],
                        "number": number,
                        "content": content,
                        "integration_id": claimed[3],
                        "now": now,
                    },
                )
                row = await cur.fetchone()
                await cur.close()
                await self.writer.execute("COMMIT")
            except BaseException:
                await self.writer.execute("ROLLBACK")
                raise
        return _sq_message((*row[:27], None, None), key)


# ------------------------------------------------------------------------------------------------------- app


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _error(status: int, message: str) -> Response:
    return Response(_dumps({"error": {"message": message}}), status_code=status, media_type="application/json")


def create_app() -> FastAPI:
    url = os.environ["BASELINE_DATABASE_URL"]
    store: PostgresStore | SqliteStore
    if url.startswith("sqlite:///"):
        store = SqliteStore(url.removeprefix("sqlite:///"))
    elif url.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(url)
    else:
        raise SystemExit(f"BASELINE_DATABASE_URL: not a postgresql:// or sqlite:/// URL: {url.split(':', 1)[0]}")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/threads/{thread_id}/messages")
    async def page(thread_id: str, request: Request) -> Response:
        thread = _uuid_or_none(thread_id)
        if thread is None:
            return _error(404, f"no thread with id '{thread_id}'")
        after_param = request.query_params.get("after")
        after = _uuid_or_none(after_param)
        if after_param is not None and after is None:
            return _error(400, f"after: no message with id '{after_param}'")
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return _error(400, "limit: not an integer")
        if not 1 <= limit <= PAGE:
            return _error(400, f"limit: 1 to {PAGE}")
        rows = await store.page(thread, after, limit)
        if rows is None:
            return _error(404, f"no thread with id '{thread_id}'")
        items = rows[:limit]
        body = {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": len(rows) > limit,
        }
        return Response(_dumps(body), media_type="application/json")

    @app.post("/threads/{thread_id}/messages")
    async def append(thread_id: str, request: Request) -> Response:
        thread = _uuid_or_none(thread_id)
        if thread is None:
            return _error(404, f"no thread with id '{thread_id}'")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "the body is not JSON")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or body.get("role", "user") != "user":
            return _error(400, 'the body must be {"content": "<text>", "role": "user"}')
        message = await store.append(thread, content)
        if message is None:
            return _error(404, f"no thread with id '{thread_id}'")
        return Response(_dumps(message), status_code=201, media_type="application/json")

    return app
