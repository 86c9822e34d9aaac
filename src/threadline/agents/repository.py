from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import NotFound
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, Integration, Thread
from threadline.models.enums import AgentType


class AgentRepository(WorkspaceRepository):
    async def get_agent(self, agent_id: str, *, lock: bool = False) -> Agent:
        """The agent; ``lock`` holds its row to the end of the transaction (SQLite's writers queue anyway)."""
        uid = parse_uuid(agent_id)
        agent: Agent | None = None
        if uid is not None:
            stmt = self.scoped(Agent).where(Agent.public_id == uid)
            if lock:
                stmt = stmt.with_for_update()
            agent = (await self.session.execute(stmt)).scalar_one_or_none()
        if agent is None:
            raise NotFound(f"no agent with id '{agent_id}'")
        return agent

    async def list(self, page: PageRequest, *, type: AgentType | None = None) -> Page[Agent]:
        stmt = self.scoped(Agent)
        if type is not None:
            stmt = stmt.where(Agent.type == type)
        return await keyset_page(self.session, stmt, Agent.id, page)

    async def named(self, name: str, *, limit: int) -> Sequence[Agent]:
        """The oldest ``limit`` agents called exactly ``name``."""
        stmt = self.scoped(Agent).where(Agent.name == name).order_by(Agent.id).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def versions_by_id(self, ids: set[int]) -> dict[int, AgentVersion]:
        """The versions with these row ids (e.g. the current versions of a page of agents), in one query."""
        if not ids:
            return {}
        stmt = self.scoped(AgentVersion).where(AgentVersion.id.in_(ids))
        return {v.id: v for v in (await self.session.execute(stmt)).scalars()}

    async def thread_counts(self, agent_ids: set[int]) -> Sequence[Any]:
        """Rows (agent_id, agent_version_id, threads): how many threads of these agents pin each version (a NULL
        version: threads started before the agent had one)."""
        if not agent_ids:
            return []
        stmt = (
            select(Thread.agent_id, Thread.agent_version_id, func.count().label("threads"))
            .where(Thread.workspace_id == self.workspace_id, Thread.agent_id.in_(agent_ids))
            .group_by(Thread.agent_id, Thread.agent_version_id)
        )
        return (await self.session.execute(stmt)).all()

    async def has_threads(self, agent: Agent) -> bool:
        stmt = select(Thread.id).where(Thread.workspace_id == self.workspace_id, Thread.agent_id == agent.id)
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def has_integrations(self, agent: Agent) -> bool:
        stmt = select(Integration.id).where(
            Integration.workspace_id == self.workspace_id, Integration.agent_id == agent.id
        )
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def delete_agent(self, agent: Agent) -> None:
        """Deletes the agent and its versions (unhooking the current one first: each points at the other)."""
        await self.session.execute(
            update(Agent)
            .where(Agent.id == agent.id, Agent.workspace_id == self.workspace_id)
            .values(current_version_id=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            delete(AgentVersion).where(
                AgentVersion.agent_id == agent.id, AgentVersion.workspace_id == self.workspace_id
            )
        )
        await self.session.execute(delete(Agent).where(Agent.id == agent.id, Agent.workspace_id == self.workspace_id))


class AgentVersionRepository(WorkspaceRepository):
    """The versions of one agent: every query, cursors included, stays within that agent."""

    def __init__(self, session: AsyncSession, workspace_id: int, agent_id: int) -> None:
        super().__init__(session, workspace_id)
        self.agent_id = agent_id

    def scoped(self, model: Any) -> Select[Any]:
        stmt = super().scoped(model)
        return stmt.where(AgentVersion.agent_id == self.agent_id) if model is AgentVersion else stmt

    async def get_version(self, version_id: str, *, param: str | None = None) -> AgentVersion:
        return await self.get(AgentVersion, version_id, label="version of this agent", param=param)

    async def next_number(self) -> int:
        stmt = select(func.coalesce(func.max(AgentVersion.number), 0)).where(
            AgentVersion.workspace_id == self.workspace_id, AgentVersion.agent_id == self.agent_id
        )
        return int((await self.session.execute(stmt)).scalar_one()) + 1

    async def list(self, page: PageRequest) -> Page[AgentVersion]:
        stmt = self.scoped(AgentVersion)
        return await keyset_page(self.session, stmt, AgentVersion.id, page)
