"""One migration history for both databases: it upgrades, matches the models, downgrades and upgrades again."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import threadline.models  # noqa: F401
from threadline.config import Settings, normalize_database_url
from threadline.db import migrate
from threadline.db.base import Base
from threadline.db.engine import create_engine


@pytest.fixture
async def fresh_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    raw = os.environ.get("THREADLINE_TEST_DATABASE_URL")
    if not raw or make_url(normalize_database_url(raw)).get_backend_name() != "postgresql":
        engine = create_engine(Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}"))
        yield engine
        await engine.dispose()
        return
    admin_url = make_url(normalize_database_url(raw))
    name = f"threadline_migr_{secrets.token_hex(5)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = create_engine(Settings(database_url=admin_url.set(database=name).render_as_string(False)))
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_upgrade_matches_models_then_downgrade_and_upgrade_again(fresh_engine: AsyncEngine) -> None:
    await migrate.upgrade(fresh_engine)
    assert await migrate.current_revision(fresh_engine) == migrate.head_revision()
    async with fresh_engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True, "include_name": migrate.include_name}),
                Base.metadata,
            )
        )
    assert diff == [], f"models and migrations disagree: {diff}"
    assert set(Base.metadata.tables) <= await _tables(fresh_engine)

    await migrate.downgrade(fresh_engine, "base")
    assert await migrate.current_revision(fresh_engine) is None
    assert await _tables(fresh_engine) <= {"alembic_version"}

    await migrate.upgrade(fresh_engine)
    await migrate.upgrade(fresh_engine)  # idempotent
    assert await migrate.current_revision(fresh_engine) == migrate.head_revision()


async def test_processes_starting_together_migrate_once(fresh_engine: AsyncEngine) -> None:
    import asyncio

    engines = [create_engine(Settings(database_url=fresh_engine.url.render_as_string(False))) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(e) for e in engines))
    finally:
        for e in engines:
            await e.dispose()
    assert await migrate.current_revision(fresh_engine) == migrate.head_revision()
