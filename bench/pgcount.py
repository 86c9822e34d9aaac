"""Count the statements a server sends to PostgreSQL, without pg_stat_statements and without the server's log.

``StatementCounter`` is a TCP proxy on 127.0.0.1 in front of PostgreSQL that reads the frontend side of the
wire protocol (https://www.postgresql.org/docs/current/protocol-message-formats.html) as it forwards it: each
simple ``Query`` ('Q') and each extended-protocol ``Execute`` ('E') is one statement executed, as
pg_stat_statements' ``calls`` would count it (BEGIN, COMMIT and LISTEN included). The text of an Execute is
the one its portal was bound to (``Bind``, 'B') from the statement prepared by ``Parse`` ('P'), tracked per
connection, so every statement is classified by its verb and table (``UPDATE workspaces``, ``SELECT runs``).
The backend's answers are copied back untouched.

Point a process's database URL at ``counter.port`` instead of PostgreSQL's and read ``counter.snapshot()``
before and after. Only that process's connections are counted, whatever else runs on the server; TLS is
refused at the proxy (it answers 'N' to SSLRequest and GSSENCRequest), so the client falls back to plain TCP
on loopback and the stream stays readable. The proxy adds a hop to every round trip: use it for counting,
not for timing.
"""

from __future__ import annotations

import asyncio
import re
import struct
import threading
from collections import Counter
from typing import Any

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_TABLE = r'"?([A-Za-z_][A-Za-z0-9_]*)"?'
_PATTERNS = (
    ("INSERT", re.compile(r"^\s*(?:WITH\b.*?\)\s*)?INSERT\s+INTO\s+" + _TABLE, re.I | re.S)),
    ("UPDATE", re.compile(r"^\s*(?:WITH\b.*?\)\s*)?UPDATE\s+" + _TABLE, re.I | re.S)),
    ("DELETE", re.compile(r"^\s*(?:WITH\b.*?\)\s*)?DELETE\s+FROM\s+" + _TABLE, re.I | re.S)),
    ("SELECT", re.compile(r"^\s*SELECT\b.*?\bFROM\s+" + _TABLE, re.I | re.S)),
)
_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START"})


def classify(sql: str) -> str:
    """``UPDATE workspaces``, ``SELECT runs``, ``BEGIN``...: a statement's verb and first table."""
    head = sql.lstrip().split(None, 1)
    verb = head[0].upper().rstrip(";") if head else ""
    if verb in _CONTROL:
        return "ROLLBACK" if verb == "ROLLBACK" else ("BEGIN" if verb == "START" else verb)
    for name, pattern in _PATTERNS:
        if verb in (name, "WITH"):
            match = pattern.match(sql)
            if match:
                return f"{name} {match.group(1).lower()}"
    return verb or "?"


class StatementCounter:
    """The proxy; ``start()`` runs it on a thread of its own (its own event loop), ``stop()`` ends it."""

    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._conns: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------------------------------------- counts

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def _count(self, sql: str) -> None:
        kind = classify(sql)
        with self._lock:
            self._counts[kind] += 1

    # ---------------------------------------------------------------------------------------------- running

    def start(self) -> StatementCounter:
        self._thread = threading.Thread(target=self._run, name="pg-statement-counter", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the statement-counting proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._conns:
            task.cancel()
        assert self._loop is not None
        self._loop.call_later(0.2, self._loop.stop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            startup = await self._startup(reader, writer)
            if startup is None:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            upstream_writer.write(startup)
            back = asyncio.create_task(self._copy(upstream_reader, writer))
            try:
                await self._frontend(reader, upstream_writer)
            finally:
                back.cancel()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()
            self._conns.discard(task)

    @staticmethod
    async def _startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """The startup packet (no type byte), after refusing TLS and GSS encryption; None for a cancel request
        (a client cancelling a query: not worth proxying for a benchmark)."""
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            rest = await reader.readexactly(length - 8)
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                writer.write(b"N")
                await writer.drain()
                continue
            if code == _CANCEL_REQUEST:
                return None
            return head + rest

    async def _frontend(self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
        prepared: dict[bytes, str] = {}
        portals: dict[bytes, bytes] = {}
        while True:
            head = await reader.readexactly(5)
            kind = head[:1]
            (length,) = struct.unpack("!i", head[1:])
            body = await reader.readexactly(length - 4)
            upstream.write(head + body)
            if kind == b"Q":
                self._count(body[:-1].decode("utf-8", "replace"))
            elif kind == b"P":
                name, _, rest = body.partition(b"\0")
                prepared[name] = rest.partition(b"\0")[0].decode("utf-8", "replace")
            elif kind == b"B":
                portal, _, rest = body.partition(b"\0")
                portals[portal] = rest.partition(b"\0")[0]
            elif kind == b"E":
                portal = body.partition(b"\0")[0]
                self._count(prepared.get(portals.get(portal, b""), "?"))
            elif kind == b"C" and body[:1] == b"S":  # Close of a prepared statement
                prepared.pop(body[1:].partition(b"\0")[0], None)
            elif kind == b"X":
                await upstream.drain()
                return
            if kind in (b"S", b"H", b"Q", b"X"):  # Sync, Flush, a simple query: the client now waits for answers
                await upstream.drain()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
