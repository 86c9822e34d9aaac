"""All SQL of the audit log. ``AuditRepository`` is built with the workspace; ``purge_audit_events`` is the
retention sweep over every workspace (the app's hourly housekeeping)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit.schemas import AuditFilters
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, ApiKey, AuditEvent


class AuditRepository(WorkspaceRepository):
    async def add(self, event: AuditEvent) -> AuditEvent:
        event.workspace_id = self.workspace_id
        self.session.add(event)
        await self.session.flush()
        return event

    async def get_event(self, audit_event_id: str) -> AuditEvent:
        return await self.get(AuditEvent, audit_event_id, label="audit event")

    async def page(self, page: PageRequest, filters: AuditFilters) -> Page[AuditEvent]:
        stmt = self.scoped(AuditEvent)
        f = filters
        if f.action is not None:
            if f.action.endswith(".*"):
                stmt = stmt.where(AuditEvent.action.startswith(f.action[:-1], autoescape=True))
            else:
                stmt = stmt.where(AuditEvent.action == f.action)
        if f.target_id is not None:
            target = parse_uuid(f.target_id)
            stmt = stmt.where(AuditEvent.target_id == target if target is not None else false())
        if f.actor_id is not None:
            stmt = stmt.where(AuditEvent.actor_id == f.actor_id)
        if f.since is not None:
            stmt = stmt.where(AuditEvent.occurred_at >= f.since)
        if f.until is not None:
            stmt = stmt.where(AuditEvent.occurred_at < f.until)
        return await keyset_page(self.session, stmt, AuditEvent.id, page)

    async def key_identity(self, api_key_id: int) -> tuple[uuid.UUID, str] | None:
        """(public id, display prefix) of this workspace's API key with row id ``api_key_id``."""
        stmt = select(ApiKey.public_id, ApiKey.prefix).where(
            ApiKey.workspace_id == self.workspace_id, ApiKey.id == api_key_id
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return (row.public_id, row.prefix) if row is not None else None

    async def agent_public_id(self, agent_id: int) -> uuid.UUID | None:
        stmt = select(Agent.public_id).where(Agent.workspace_id == self.workspace_id, Agent.id == agent_id)
        public_id: uuid.UUID | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return public_id


async def purge_audit_events(session: AsyncSession, *, before: datetime) -> int:
    """Delete every workspace's audit events that occurred before ``before`` (retention); returns how many."""
    result = await session.execute(delete(AuditEvent).where(AuditEvent.occurred_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
