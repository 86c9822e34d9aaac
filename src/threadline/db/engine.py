"""Engine construction: one async engine per process, tuned per database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from threadline.config import Settings

WRITE_OPTION = "threadline_write"
READ_ONLY_OPTION = "threadline_read_only"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(settings: Settings) -> AsyncEngine:
    """Create the async engine for ``settings``; on SQLite also create the data directory and set pragmas."""
    url = make_url(settings.database.resolved_url)
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(settings, url)
    return create_async_engine(
        url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        # No pre-ping: it costs a round trip on every checkout. Connections are recycled instead, and a
        # dropped one fails one request and leaves the pool.
        pool_recycle=1800,
    )


def _use_wal(cursor: Any, within_s: float) -> None:
    """Put the database in WAL mode (it stays so, in the file). A new database's switch needs a lock for
    which SQLite may answer "database is locked" at once, busy_timeout or not, while another process
    (starting at the same time) holds it: tried again until ``within_s``."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + within_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # sqlite3.OperationalError, through the async driver's adapter
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _create_sqlite_engine(settings: Settings, url: Any) -> AsyncEngine:
    in_memory = not url.database or url.database == ":memory:"
    if not in_memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # An in-memory database lives in one connection (SQLAlchemy uses a StaticPool for it).
    engine = create_async_engine(url) if in_memory else create_async_engine(url, pool_size=5, max_overflow=10)
    busy_timeout = settings.database.sqlite_busy_timeout_ms

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (below), so writers can take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # busy_timeout first: switching a new database to WAL takes a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
        _use_wal(cursor, busy_timeout / 1000)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY at once when
        # another writer committed in between (busy_timeout does not apply); BEGIN IMMEDIATE waits.
        options = conn.get_execution_options()
        if options.get(READ_ONLY_OPTION, False):
            return  # each statement is its own snapshot (see read_engine)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION, False) else "BEGIN")

    return engine


def write_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine for requests that change data: on SQLite they take the write lock when they begin."""
    return engine.execution_options(**{WRITE_OPTION: True}) if is_sqlite(engine) else engine


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads (GET): autocommit, so a read costs no BEGIN and COMMIT round trips.

    Each statement sees the latest committed data; a read request's few statements (key, thread, page)
    need no common snapshot, since every page is addressed by keys that never change.
    """
    if is_sqlite(engine):
        return engine.execution_options(**{READ_ONLY_OPTION: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def ping(engine: AsyncEngine) -> None:
    """``SELECT 1`` on a connection of ``engine``: raises when the database cannot be reached."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


SETTINGS_INFO = "threadline.settings"


def create_sessionmaker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[Any]:
    """Sessions on ``engine`` that carry the process's ``settings`` (see ``session_settings``)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info={SETTINGS_INFO: settings})


def session_settings(session: AsyncSession) -> Settings:
    """The settings of the process whose sessionmaker made ``session``.

    A unit of work carries its process's configuration with it: a service that needs a policy (how often a
    job is tried, a run's debounce window) reads it from the session it is handed, never from a module
    global, so two apps in one process (tests) each keep their own."""
    try:
        settings = session.info[SETTINGS_INFO]
    except KeyError:
        raise RuntimeError(
            "a session made without settings: use db.engine.create_sessionmaker(engine, settings)"
        ) from None
    assert isinstance(settings, Settings)
    return settings


def sessionmaker_settings(maker: async_sessionmaker[Any]) -> Settings:
    """The settings a sessionmaker from ``create_sessionmaker`` hands its sessions."""
    settings = maker.kw.get("info", {}).get(SETTINGS_INFO)
    if not isinstance(settings, Settings):
        raise RuntimeError("a sessionmaker made without settings: use db.engine.create_sessionmaker(engine, settings)")
    return settings
