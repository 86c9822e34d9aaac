"""Reading the audit log back, through the API and straight from the table."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.models import AuditEvent


async def audit_events(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every audit event the client's key sees (with ``params`` as filters), oldest first, walking the pages."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page_params = {"limit": 100, **params, **({"after": after} if after else {})}
        r = await api.get("/v1/audit_events", params=page_params)
        assert r.status_code == 200, r.text
        body = r.json()
        found.extend(body["data"])
        if not body["has_more"]:
            return found
        after = body["last_id"]


async def stored_rows(sessionmaker: async_sessionmaker[AsyncSession], workspace_id: int) -> list[dict[str, Any]]:
    """Every column of the workspace's audit rows, as stored."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.workspace_id == workspace_id).order_by(AuditEvent.id)
            )
        ).scalars()
        return [{c.key: getattr(row, c.key) for c in AuditEvent.__table__.columns} for row in rows]


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in events]
