from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, Integration, Thread, Workspace
from threadline.models.enums import ChannelType


class IntegrationRepository(WorkspaceRepository):
    async def get_integration(self, integration_id: str) -> Integration:
        return await self.get(Integration, integration_id, label="integration")

    async def get_agent(self, agent_id: str, *, param: str) -> Agent:
        return await self.get(Agent, agent_id, label="agent", param=param)

    async def agent_public_ids(self, ids: set[int]) -> dict[int, uuid.UUID]:
        """{agent row id: public id} for the agents a page of integrations points at, in one query."""
        if not ids:
            return {}
        stmt = select(Agent.id, Agent.public_id).where(Agent.workspace_id == self.workspace_id, Agent.id.in_(ids))
        return {row.id: row.public_id for row in await self.session.execute(stmt)}

    async def list(
        self,
        page: PageRequest,
        *,
        type: ChannelType | None = None,
        agent_id: int | None = None,
        enabled: bool | None = None,
    ) -> Page[Integration]:
        stmt = self.scoped(Integration)
        if type is not None:
            stmt = stmt.where(Integration.type == type)
        if agent_id is not None:
            stmt = stmt.where(Integration.agent_id == agent_id)
        if enabled is not None:
            stmt = stmt.where(Integration.enabled == enabled)
        return await keyset_page(self.session, stmt, Integration.id, page)

    async def has_threads(self, integration: Integration) -> bool:
        stmt = select(Thread.id).where(
            Thread.workspace_id == self.workspace_id, Thread.integration_id == integration.id
        )
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def delete_integration(self, integration: Integration) -> None:
        await self.session.execute(
            delete(Integration).where(Integration.id == integration.id, Integration.workspace_id == self.workspace_id)
        )

    async def oldest_enabled(self, type: ChannelType) -> Integration | None:
        """The workspace's first-created enabled integration of ``type``, if it has one."""
        stmt = (
            self.scoped(Integration)
            .where(Integration.type == type, Integration.enabled.is_(True))
            .order_by(Integration.id)
            .limit(1)
        )
        integration: Integration | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return integration

    async def lock_workspace(self) -> None:
        """Lock the workspace's row until the transaction ends (FOR UPDATE on PostgreSQL; SQLite runs one
        writer at a time already)."""
        stmt = select(Workspace.id).where(Workspace.id == self.workspace_id).with_for_update()
        await self.session.execute(stmt)
