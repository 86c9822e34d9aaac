"""Privacy tests: a worker for erasures (and what makes data: runs, webhook deliveries), a webhook receiver
that echoes what it is sent, and a scan of every table of the database for a person's words."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import threadline.models
import threadline.privacy.tasks
import threadline.runs.tasks
import threadline.webhooks.tasks  # noqa: F401 - registers webhooks.deliver
from tests.channels.conftest import twilio_side  # noqa: F401 - fixture: what Twilio is to the app
from tests.conftest import Tenant
from tests.dialects.conftest import provider  # noqa: F401 - fixture: the scripted model, by the end user's message
from tests.runs.conftest import running_worker, until
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.base import Base
from threadline.jobs.worker import Worker
from threadline.kit.secrets import SecretBox, SecretDecryptionError, secret_box
from threadline.privacy.erasure import ERASE_KIND

RUNS = "runs.execute"
WEBHOOKS = "webhooks.deliver"


def distinctive(label: str) -> str:
    """A phrase no other test (and nothing threadline makes up) contains."""
    return f"{label}-{secrets.token_hex(6)}"


def new_phone() -> str:
    return "+1555" + "".join(str(secrets.randbelow(10)) for _ in range(7))


@pytest.fixture
def private_webhooks(tune: Any) -> Settings:
    """The app's settings with webhooks to 127.0.0.1 allowed (the echo receiver below)."""
    return tune(webhook_allow_private_urls=True, webhook_timeout_s=2.0)


@pytest.fixture
async def erasure_worker(sessionmaker: Any, settings: Settings) -> AsyncIterator[Worker]:
    """A worker of erasures only."""
    async with running_worker(sessionmaker, settings, kinds=(ERASE_KIND,)) as w:
        yield w


@pytest.fixture
async def busy_worker(sessionmaker: Any, private_webhooks: Settings) -> AsyncIterator[Worker]:
    """A worker of runs, webhook deliveries and erasures: what makes a person's data and what erases it."""
    async with running_worker(sessionmaker, private_webhooks, kinds=(RUNS, WEBHOOKS, ERASE_KIND)) as w:
        yield w


# ------------------------------------------------------------------------------------------ the echo receiver


class EchoReceiver:
    """A webhook receiver on 127.0.0.1 that answers each delivery with the body it was sent, so that the
    delivery log's attempts (``response_body``) hold what the events held."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.bodies.append(body)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.bodies)

    @contextmanager
    def running(self) -> Iterator[EchoReceiver]:
        thread = threading.Thread(target=self.server.serve_forever, name="echo-receiver", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def echo() -> Iterator[EchoReceiver]:
    with EchoReceiver().running() as receiver:
        yield receiver


# ------------------------------------------------------------------------------------------ the scan


@dataclass(frozen=True)
class Trace:
    table: str
    column: str
    row: str
    needle: str


def _readable(value: Any, box: SecretBox) -> str:
    """A column's value as text to search, with what the app encrypted decrypted (a whole column, such as a
    stored response, or a string inside JSON, such as an HTTP tool's header)."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return box.decrypt_bytes(raw).decode("utf-8", "replace")
        except SecretDecryptionError:
            return raw.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(_decrypted_json(value, box), ensure_ascii=False)
    return str(value)


def _decrypted_json(value: Any, box: SecretBox) -> Any:
    if isinstance(value, dict):
        return {k: _decrypted_json(v, box) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypted_json(v, box) for v in value]
    if isinstance(value, str) and value.startswith("gAAAAA"):  # a Fernet token
        try:
            return box.decrypt(value.encode())
        except SecretDecryptionError:
            return value
    return value


async def scan(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *needles: str) -> list[Trace]:
    """Every place in the database where one of ``needles`` appears (case-insensitively), table by table and
    column by column: every table of ``Base.metadata`` (so a table added later is scanned too), read with its
    column types, and any other table the database holds (one a test made), read as it is stored."""
    box = secret_box(settings)
    wanted = [n.lower() for n in needles]
    found: list[Trace] = []
    async with sessionmaker() as session:
        conn = await session.connection()
        others = set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - set(Base.metadata.tables)
        # SQLite's full-text tables read the rows of the tables they index (scanned already); what they keep
        # themselves, their shadow tables (messages_fts_data...), is scanned like any other table.
        others -= set(migrate.FTS_TABLES)
        queries: list[tuple[str, Any, list[str]]] = [
            (t.name, select(t), [c.name for c in t.primary_key.columns]) for t in Base.metadata.sorted_tables
        ]
        queries += [(name, text(f'SELECT * FROM "{name}"'), []) for name in sorted(others)]
        for name, query, key in queries:
            result = await session.execute(query)
            columns = list(result.keys())
            for number, row in enumerate(result):
                values = dict(zip(columns, row, strict=True))
                where = ",".join(f"{c}={values[c]}" for c in key) or f"row {number}"
                for column, value in values.items():
                    readable = _readable(value, box).lower()
                    found.extend(Trace(name, column, where, n) for n in wanted if n in readable)
    return found


# ------------------------------------------------------------------------------------------ helpers


@asynccontextmanager
async def as_tenant(app: Any, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own, authenticated as ``tenant``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=tenant.headers) as c:
        yield c


async def erase(api: httpx.AsyncClient, end_user_id: str) -> dict[str, Any]:
    r = await api.delete(f"/v1/end_users/{end_user_id}", params={"erase": "true"})
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    assert r.headers["location"] == f"/v1/erasures/{body['id']}"
    return body


async def erased(api: httpx.AsyncClient, erasure_id: str, within_s: float = 30) -> dict[str, Any]:
    """The erasure once it has completed (failing if it failed or took too long)."""
    latest: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal latest
        r = await api.get(f"/v1/erasures/{erasure_id}")
        assert r.status_code == 200, r.text
        latest = r.json()
        assert latest["status"] != "failed", latest
        return bool(latest["status"] == "completed")

    started = time.monotonic()
    await until(done, within_s=within_s)
    assert time.monotonic() - started < within_s
    return latest
