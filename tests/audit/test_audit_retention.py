"""Audit events are kept ``THREADLINE_AUDIT_RETENTION_DAYS`` (365 by default), then the app's hourly
housekeeping deletes them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from tests.audit.helpers import audit_events
from tests.conftest import Tenant
from threadline.app import _housekeeping
from threadline.audit.repository import purge_audit_events
from threadline.config import Settings
from threadline.kit.clock import utcnow
from threadline.models import AuditEvent


async def _age(sessionmaker: Any, event_id: str, days: float) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.public_id == uuid.UUID(event_id))
            .values(occurred_at=utcnow() - timedelta(days=days))
        )


async def _three_events(api: httpx.AsyncClient, sessionmaker: Any) -> list[dict[str, Any]]:
    for _ in range(2):
        assert (await api.post("/v1/api_keys", json={"scopes": ["read"]})).status_code == 201
    events = await audit_events(api)
    assert len(events) == 3
    await _age(sessionmaker, events[0]["id"], 400)
    await _age(sessionmaker, events[1]["id"], 364)
    return events


async def test_the_purge_deletes_what_is_older_than_the_cutoff(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    events = await _three_events(api, sessionmaker)
    async with sessionmaker() as session, session.begin():
        purged = await purge_audit_events(session, before=utcnow() - timedelta(days=365))
    assert purged >= 1  # every workspace's: this test's one, and any other test's older than a year
    assert [e["id"] for e in await audit_events(api)] == [e["id"] for e in events[1:]]


async def test_housekeeping_purges_past_the_configured_retention(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any, settings: Settings
) -> None:
    events = await _three_events(api, sessionmaker)
    assert Settings().events.audit_retention_days == 365
    keep_300_days = settings.replace(audit_retention_days=300, idempotency_purge_interval_s=3600)
    task = asyncio.create_task(_housekeeping(sessionmaker, keep_300_days))
    try:
        for _ in range(200):
            if len(await audit_events(api)) == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e["id"] for e in await audit_events(api)] == [events[2]["id"]]
