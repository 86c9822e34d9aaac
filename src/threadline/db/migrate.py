"""Apply and inspect migrations from code (the server on start, ``threadline migrate``, the tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from threadline.db.engine import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


# What migration 0014 adds for full-text search outside the models, read only by search.repository: SQLite's FTS5
# virtual tables (and the shadow tables they keep), PostgreSQL's generated tsvector columns and their GIN indexes.
FTS_TABLES = ("messages_fts", "end_users_fts")  # external content: their rows are those of messages, end_users
_FTS_TABLE = re.compile(r"^(messages|end_users)_fts(_(data|idx|docsize|config|content))?$")
_SEARCH_COLUMNS = {("messages", "search_vector"), ("end_users", "search_vector")}
_SEARCH_INDEXES = {"ix_messages_search", "ix_end_users_search"}


def include_name(name: str | None, type_: Any, parent_names: Any) -> bool:
    """Alembic's filter of what autogenerate compares: all but the full-text search structures of migration 0014."""
    if type_ == "table":
        return not (name is not None and _FTS_TABLE.match(name))
    if type_ == "column":
        return (parent_names.get("table_name"), name) not in _SEARCH_COLUMNS
    if type_ == "index":
        return name not in _SEARCH_INDEXES
    return True


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


# Any constant: processes that start together on one PostgreSQL take turns migrating.
_MIGRATION_LOCK_KEY = 0x7468726C  # "thrl"


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def _upgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    if engine.dialect.name == "sqlite":
        # Take the write lock up front, so a second process waits instead of failing on upgrade.
        engine = engine.execution_options(**{WRITE_OPTION: True})
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends; the next process then finds nothing left to do.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        await conn.run_sync(_upgrade)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    def _downgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_downgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)
