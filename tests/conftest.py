"""Test fixtures: one database per test run (SQLite file, or a fresh PostgreSQL database), one app.

``THREADLINE_TEST_DATABASE_URL`` selects the database: unset means SQLite. For PostgreSQL give the URL
of a server database we may connect to (e.g. postgresql://postgres@127.0.0.1:5432/postgres); the run
creates its own database ``threadline_test_<random>`` there and drops it at the end. Each test gets
fresh workspaces, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from threadline.api_keys.service import create_key
from threadline.app import create_app
from threadline.audit.service import Actor
from threadline.config import Settings, normalize_database_url
from threadline.db import migrate
from threadline.db.engine import SETTINGS_INFO, create_engine, create_sessionmaker, is_sqlite, write_engine
from threadline.models.enums import Scope
from threadline.workspaces.service import create_workspace

TEST_DB_ENV = "THREADLINE_TEST_DATABASE_URL"


def _is_postgres() -> bool:
    url = os.environ.get(TEST_DB_ENV)
    return bool(url) and make_url(normalize_database_url(url)).get_backend_name() == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _is_postgres():
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set THREADLINE_TEST_DATABASE_URL")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    raw = os.environ.get(TEST_DB_ENV)
    if not raw:
        with tempfile.TemporaryDirectory(prefix="threadline-test-") as tmp:
            yield normalize_database_url(f"sqlite:///{Path(tmp) / 'test.db'}")
        return
    admin_url = make_url(normalize_database_url(raw))
    if admin_url.get_backend_name() != "postgresql":
        yield normalize_database_url(raw)
        return
    name = f"threadline_test_{secrets.token_hex(6)}"
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_execute(admin_url: Any, sql: str) -> None:
    import asyncio

    async def run() -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(sql)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # A secret key of the run's own: encrypting secrets must never create a key file in the repository.
    return Settings(
        database_url=database_url,
        auto_migrate=False,
        bootstrap=False,
        log_level="warning",
        secret_keys=SecretStr(Fernet.generate_key().decode()),
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(write_engine(engine), settings)


@pytest.fixture
def tune(
    monkeypatch: pytest.MonkeyPatch, app: Any, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> Callable[..., Settings]:
    """Change settings for one test, where the session's app and workers read them: ``tune(job_max_attempts=2)``.

    Settings are frozen and handed on, so the changed copy goes where they are handed: the app's state
    (requests), and the sessions of the app's and of the test's sessionmakers (services, and the workers made
    without settings of their own, which take their sessions'). Each call builds on the one before."""
    current = [settings]

    def apply(**changes: Any) -> Settings:
        current[0] = current[0].replace(**changes)
        monkeypatch.setitem(app.state._state, "settings", current[0])  # (State keeps its attributes in _state)
        for maker in (app.state.sessionmaker, app.state.read_sessionmaker, sessionmaker):
            monkeypatch.setitem(maker.kw["info"], SETTINGS_INFO, current[0])
        return current[0]

    return apply


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Any]:
    application = create_app(settings, engine=engine)
    yield application
    await application.state.last_used.drain()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Tenant:
    """A fresh workspace with an admin key; ``headers`` authenticate as it."""

    workspace_id: int
    name: str
    key: str
    headers: dict[str, str] = field(default_factory=dict)


async def make_tenant(
    sessionmaker: async_sessionmaker[AsyncSession], scopes: tuple[Scope, ...] = (Scope.ADMIN,)
) -> Tenant:
    async with sessionmaker() as session, session.begin():
        ws = await create_workspace(session, name=f"ws-{uuid.uuid4().hex[:12]}")
        _, secret = await create_key(session, workspace_id=ws.id, scopes=scopes, name="test", actor=Actor.cli())
    return Tenant(ws.id, ws.name, secret, {"Authorization": f"Bearer {secret}"})


async def add_key(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, scopes: tuple[Scope, ...]) -> str:
    async with sessionmaker() as session, session.begin():
        _, secret = await create_key(session, workspace_id=tenant.workspace_id, scopes=scopes, actor=Actor.cli())
    return secret


@pytest.fixture
async def tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessionmaker)


@pytest.fixture
async def other_tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessionmaker)


@pytest.fixture
async def api(client: httpx.AsyncClient, tenant: Tenant) -> httpx.AsyncClient:
    """The test client, authenticated as ``tenant``'s admin key."""
    client.headers.update(tenant.headers)
    return client


@pytest.fixture(scope="session")
def is_postgres(engine: AsyncEngine) -> bool:
    return not is_sqlite(engine)
