"""What the ``threadline`` command does is recorded as the CLI, run as the operating-system user; what the
first start does, as threadline itself."""

from __future__ import annotations

import getpass
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.audit.helpers import actions, audit_events
from tests.cli.test_cli import KEY_RE, _create_key, empty_database_url, run_cli  # noqa: F401 - a fixture
from tests.integrations.test_rotation import _cli, _key, _seed, _settings, own_database_url, own_engine  # noqa: F401
from threadline.config import Settings
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.models import ApiKey, AuditEvent, Integration, WebhookEndpoint
from threadline.workspaces.bootstrap import bootstrap_if_empty


def _operator() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


async def test_keys_created_and_revoked_with_the_cli_are_recorded_as_the_cli(
    database_url: str, client: httpx.AsyncClient
) -> None:
    workspace = f"audit-{uuid.uuid4().hex[:10]}"
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    admin_id, admin_secret = await _create_key(database_url, workspace, scopes="admin")
    other_id, other_secret = await _create_key(database_url, workspace, scopes="read")
    revoked = await run_cli(database_url, "keys", "revoke", other_id)
    assert revoked.returncode == 0, revoked
    assert (await run_cli(database_url, "keys", "revoke", other_id)).returncode == 0  # again: nothing new

    client.headers["Authorization"] = f"Bearer {admin_secret}"
    events = await audit_events(client)
    assert actions(events) == ["api_key.created", "api_key.created", "api_key.revoked"]
    assert [e["target"]["id"] for e in events] == [admin_id, other_id, other_id]
    for event in events:
        assert event["actor"] == {"type": "cli", "id": _operator(), "key_prefix": None}
        assert event["request_id"] is None and event["client_address"] is None
    assert events[0]["details"] == {"scopes": ["admin"]} and events[1]["details"] == {"scopes": ["read"]}
    text = (await client.get("/v1/audit_events")).text
    assert admin_secret not in text and other_secret not in text


async def test_secrets_rotate_records_each_reencrypted_row_in_its_workspace(
    own_engine: AsyncEngine,  # noqa: F811
) -> None:
    url = own_engine.url.render_as_string(hide_password=False)
    old, new = _key(), _key()
    maker = create_sessionmaker(write_engine(own_engine), Settings())
    seeded = await _seed(maker, _settings(url, old), workspaces=2)
    async with maker() as session:
        before = (await session.execute(select(AuditEvent.id))).scalars().all()

    code, _, err = await _cli(url, f"{new},{old}", "--batch-size", "2")
    assert code == 0, err

    async with maker() as session:
        rows = (
            (await session.execute(select(AuditEvent).where(AuditEvent.id.not_in(before)).order_by(AuditEvent.id)))
            .scalars()
            .all()
        )
        integrations = {
            i.public_id: i.workspace_id
            for i in (await session.execute(select(Integration).where(Integration.secrets_ciphertext.is_not(None))))
            .scalars()
            .all()
        }
        endpoint = await session.get(WebhookEndpoint, seeded.webhook[0])
        assert endpoint is not None
    by_action: dict[str, list[Any]] = {}
    for row in rows:
        by_action.setdefault(row.action, []).append(row)
        assert (row.actor_type, row.actor_id, row.actor_key_prefix) == ("cli", _operator(), None)
        assert row.details == {} and row.request_id is None
    assert sorted(by_action) == [
        "agent_version.secrets_reencrypted",
        "integration.secrets_reencrypted",
        "webhook.secrets_reencrypted",
    ]
    # Each integration that holds secrets, in its own workspace's log.
    assert {(r.target_id, r.workspace_id) for r in by_action["integration.secrets_reencrypted"]} == set(
        integrations.items()
    )
    [webhook] = by_action["webhook.secrets_reencrypted"]
    assert (webhook.target_type, webhook.target_id, webhook.workspace_id) == (
        "webhook",
        endpoint.public_id,
        endpoint.workspace_id,
    )
    plaintexts = [v for given in seeded.integrations.values() for v in given.values()] + list(seeded.webhook[1:])
    stored = repr([{c.key: getattr(r, c.key) for c in AuditEvent.__table__.columns} for r in rows])
    assert not any(p in stored for p in plaintexts)


async def test_the_first_start_key_is_recorded_as_threadline_itself(
    empty_database_url: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(database_url=empty_database_url)
    engine = create_engine(settings)
    try:
        await bootstrap_if_empty(create_sessionmaker(write_engine(engine), Settings()), settings)
        [secret] = set(KEY_RE.findall(capsys.readouterr().out))  # the banner's key (and curl lines with it)
        async with engine.connect() as conn:
            key = (await conn.execute(select(ApiKey))).one()
            [event] = (await conn.execute(select(AuditEvent))).all()
        assert (event.action, event.target_type, event.target_id) == ("api_key.created", "api_key", key.public_id)
        assert (event.actor_type, event.actor_id, event.workspace_id) == ("system", None, key.workspace_id)
        assert sorted(event.details["scopes"]) == ["admin", "read", "write"]
        assert secret.startswith(key.prefix) and secret not in repr(event)
    finally:
        await engine.dispose()
