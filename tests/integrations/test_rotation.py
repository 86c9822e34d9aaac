"""Secret key rotation (``threadline secrets rotate``): everything encrypted is re-encrypted with the new first
key, in batches, so that the old key can be dropped and everything still decrypts.

Rotation rewrites every workspace's rows, so these tests run on a database of their own (on the run's
database server) rather than on the shared test database, whose rows other tests decrypt with the run's key.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tests.integrations.helpers import sms_body, whatsapp_body
from threadline.audit.service import Actor
from threadline.config import Settings, normalize_database_url
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.engines.tools import HttpTool, open_headers, seal_headers
from threadline.integrations.rotation import rotate_secret_keys
from threadline.integrations.schemas import IntegrationCreate
from threadline.integrations.service import channel_credentials, create_integration
from threadline.kit.secrets import SecretDecryptionError, secret_box
from threadline.models import Agent, AgentVersion, Integration, WebhookEndpoint
from threadline.models.enums import AgentMode
from threadline.webhooks.schemas import WebhookCreate
from threadline.webhooks.service import create_webhook, rotate_secret
from threadline.workspaces.service import create_workspace

Maker = async_sessionmaker[AsyncSession]


def _key() -> str:
    return Fernet.generate_key().decode()


async def _admin_execute(admin_url: Any, sql: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


@pytest.fixture
async def own_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database of this test's own, on the run's database (SQLite file or a new PostgreSQL one)."""
    raw = os.environ.get("THREADLINE_TEST_DATABASE_URL")
    admin_url = make_url(normalize_database_url(raw)) if raw else None
    cleanup = None
    if admin_url is not None and admin_url.get_backend_name() == "postgresql":
        name = f"threadline_test_rotate_{secrets.token_hex(6)}"
        await _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        cleanup = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    else:
        url = normalize_database_url(f"sqlite:///{tmp_path / 'rotate.db'}")
    engine = create_engine(Settings(database_url=url))
    await migrate.upgrade(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        if cleanup is not None and admin_url is not None:
            await _admin_execute(admin_url, cleanup)


@pytest.fixture
async def own_engine(own_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=own_database_url))
    yield engine
    await engine.dispose()


def _settings(url: str, *keys: str) -> Settings:
    return Settings(database_url=url, secret_keys=SecretStr(",".join(keys)), webhook_allow_private_urls=True)


@dataclass
class Seeded:
    integrations: dict[str, dict[str, str]]  # public id -> the secrets given
    webhook: tuple[int, str, str]  # row id, current secret, previous secret
    agent_version_id: int
    headers: dict[str, str]


async def _seed(maker: Maker, settings: Settings, *, workspaces: int = 2) -> Seeded:
    integrations: dict[str, dict[str, str]] = {}
    async with maker() as session, session.begin():
        for n in range(workspaces):
            ws = await create_workspace(session, name=f"rotate-{n}-{uuid.uuid4().hex[:6]}")
            for body in (sms_body(), whatsapp_body(), {"type": "api"}):
                data = IntegrationCreate.model_validate(body)
                created = await create_integration(
                    session, workspace_id=ws.id, data=data, settings=settings, actor=Actor.cli()
                )
                given = {k: v.get_secret_value() for k, v in data.secrets.items()}
                integrations[str(created.integration.public_id)] = given
        endpoint, first_secret = await create_webhook(
            session,
            workspace_id=ws.id,
            data=WebhookCreate(url="https://hooks.example.com/in"),
            settings=settings,
            actor=Actor.cli(),
        )
        endpoint, secret = await rotate_secret(
            session, workspace_id=ws.id, webhook_id=str(endpoint.public_id), settings=settings, actor=Actor.cli()
        )
        headers = {"Authorization": f"Bearer {secrets.token_hex(8)}"}
        tool = {"type": "http", "name": "lookup", "url": "https://shop.example.com/api", "headers": headers}
        agent = Agent(workspace_id=ws.id, name="tools")
        session.add(agent)
        await session.flush()
        version = AgentVersion(
            workspace_id=ws.id,
            agent_id=agent.id,
            number=1,
            name="v1",
            mode=AgentMode.PROMPT,
            tools=seal_headers([tool, {"type": "end_conversation"}], secret_box(settings)),
        )
        plain = AgentVersion(workspace_id=ws.id, agent_id=agent.id, number=2, name="v2", mode=AgentMode.PROMPT)
        session.add_all([version, plain])
        await session.flush()
        return Seeded(integrations, (endpoint.id, secret, first_secret), version.id, headers)


async def _snapshot(maker: Maker) -> dict[str, Any]:
    async with maker() as session:
        integrations = (await session.execute(select(Integration))).scalars().all()
        endpoints = (await session.execute(select(WebhookEndpoint))).scalars().all()
        versions = (await session.execute(select(AgentVersion))).scalars().all()
        return {
            "integrations": {i.id: (i.secrets_ciphertext, i.secret_names, i.updated_at) for i in integrations},
            "endpoints": {e.id: (e.secret_ciphertext, e.previous_secret_ciphertext, e.updated_at) for e in endpoints},
            "versions": {v.id: v.tools for v in versions},
        }


async def _assert_everything_opens(maker: Maker, settings: Settings, seeded: Seeded) -> None:
    box = secret_box(settings)
    async with maker() as session:
        for public_id, given in seeded.integrations.items():
            creds = await channel_credentials(session, workspace_id=None, integration_id=public_id, settings=settings)
            assert creds.secrets == given
        endpoint = await session.get(WebhookEndpoint, seeded.webhook[0])
        assert endpoint is not None and endpoint.previous_secret_ciphertext is not None
        assert box.decrypt(endpoint.secret_ciphertext) == seeded.webhook[1]
        assert box.decrypt(endpoint.previous_secret_ciphertext) == seeded.webhook[2]
        version = await session.get(AgentVersion, seeded.agent_version_id)
        assert version is not None
        tool = HttpTool.model_validate(version.tools[0])
        assert open_headers(tool, box) == seeded.headers
        assert version.tools[1] == {"type": "end_conversation"}


async def test_rotation_reencrypts_everything_so_the_old_key_can_be_dropped(own_engine: AsyncEngine) -> None:
    url = own_engine.url.render_as_string(hide_password=False)
    old, new, stranger = _key(), _key(), _key()
    maker = create_sessionmaker(write_engine(own_engine), Settings())
    seeded = await _seed(maker, _settings(url, old))
    # A row encrypted with a key nobody configured: reported, and left as it was.
    lost = await _seed(maker, _settings(url, stranger), workspaces=1)
    before = await _snapshot(maker)

    report = await rotate_secret_keys(maker, settings=_settings(url, new, old), actor=Actor.cli(), batch_size=2)

    lost_ids = {f"integration {public_id}" for public_id, given in lost.integrations.items() if given}
    assert set(report.unreadable) == {
        *lost_ids,
        f"webhook_endpoint {(await _public_id(maker, WebhookEndpoint, lost.webhook[0]))}",
        f"agent_version {(await _public_id(maker, AgentVersion, lost.agent_version_id))}",
    }
    assert report.rotated == {"integration": 4, "webhook_endpoint": 1, "agent_version": 1}

    await _assert_everything_opens(maker, _settings(url, new), seeded)  # the old key is gone
    await _assert_everything_opens(maker, _settings(url, stranger), lost)  # untouched
    with pytest.raises(SecretDecryptionError):
        await _assert_everything_opens(maker, _settings(url, old), seeded)
    after = await _snapshot(maker)
    lost_rows = await _ids(maker, lost)
    for row_id, (ciphertext, names, updated_at) in after["integrations"].items():
        old_ciphertext, old_names, old_updated_at = before["integrations"][row_id]
        assert (names, updated_at) == (old_names, old_updated_at)  # re-encrypting is no change to the resource
        assert (ciphertext == old_ciphertext) == (ciphertext is None or row_id in lost_rows)
    for row_id, (current, previous, updated_at) in after["endpoints"].items():
        assert updated_at == before["endpoints"][row_id][2]
        unchanged = (current, previous) == before["endpoints"][row_id][:2]
        assert unchanged == (row_id == lost.webhook[0])
    sealed = (seeded.agent_version_id, lost.agent_version_id)
    assert after["versions"][sealed[0]] != before["versions"][sealed[0]]
    assert after["versions"][sealed[1]] == before["versions"][sealed[1]]
    assert {k: v for k, v in after["versions"].items() if k not in sealed} == {
        k: v for k, v in before["versions"].items() if k not in sealed
    }

    # Rotating again with the new key alone is harmless and finds the same unreadable rows.
    again = await rotate_secret_keys(maker, settings=_settings(url, new), actor=Actor.cli(), batch_size=500)
    assert again.rotated == report.rotated and set(again.unreadable) == set(report.unreadable)
    await _assert_everything_opens(maker, _settings(url, new), seeded)


async def _public_id(maker: Maker, model: Any, row_id: int) -> uuid.UUID:
    async with maker() as session:
        row = await session.get(model, row_id)
        assert row is not None
        public_id: uuid.UUID = row.public_id
        return public_id


async def _ids(maker: Maker, seeded: Seeded) -> set[int]:
    async with maker() as session:
        uids = [uuid.UUID(p) for p in seeded.integrations]
        return set((await session.execute(select(Integration.id).where(Integration.public_id.in_(uids)))).scalars())


async def _cli(database_url: str, keys: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env.update(THREADLINE_LOG_LEVEL="warning", THREADLINE_DATABASE_URL=database_url, THREADLINE_SECRET_KEYS=keys)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadline.cli",
        "secrets",
        "rotate",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_command_rotates_prints_counts_and_fails_on_unreadable_rows(own_engine: AsyncEngine) -> None:
    url = own_engine.url.render_as_string(hide_password=False)
    old, new = _key(), _key()
    maker = create_sessionmaker(write_engine(own_engine), Settings())
    seeded = await _seed(maker, _settings(url, old), workspaces=1)
    plaintexts = [v for given in seeded.integrations.values() for v in given.values()] + list(seeded.webhook[1:])

    code, out, err = await _cli(url, f"{new},{old}", "--batch-size", "1")
    assert code == 0, err
    assert out.strip() == "re-encrypted with the first key: 2 integrations, 1 webhook endpoints, 1 agent versions"
    await _assert_everything_opens(maker, _settings(url, new), seeded)
    assert not any(p in out or p in err for p in plaintexts)

    # Run with a key that opens nothing: every row is named on stderr, the exit status says it failed.
    code, out, err = await _cli(url, _key())
    assert code == 1 and "Traceback" not in err, err
    assert "0 integrations, 0 webhook endpoints, 0 agent versions" in out
    assert err.count("not decryptable with any configured key") == 4 and "error: 4 left as they were" in err
    assert not any(p in out or p in err for p in plaintexts)
    await _assert_everything_opens(maker, _settings(url, new), seeded)

    code, _, err = await _cli(url, "not-a-key")
    assert code == 1 and "secret_keys: entry 1 is not a Fernet key" in err and "Traceback" not in err
