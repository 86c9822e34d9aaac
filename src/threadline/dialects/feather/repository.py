"""Feather's one read of its own: a thread with its agent and the agent version it shows, in one query."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, Thread


class FeatherThreadRepository(WorkspaceRepository):
    async def thread_with_agent(self, thread_uid: uuid.UUID) -> Any | None:
        """The thread's row joined to its agent and to the version it runs: the one the thread is pinned to,
        else the agent's current one (the ``version_*`` columns are NULL when there is neither). None when
        the thread is not in this workspace."""
        shown_version = func.coalesce(Thread.agent_version_id, Agent.current_version_id)
        stmt = (
            select(
                Thread.public_id.label("thread_public_id"),
                Agent.public_id.label("agent_public_id"),
                Agent.name.label("agent_name"),
                Agent.description.label("agent_description"),
                Agent.type.label("agent_type"),
                AgentVersion.public_id.label("version_public_id"),
                AgentVersion.number.label("version_number"),
                AgentVersion.name.label("version_name"),
                AgentVersion.mode.label("version_mode"),
                # What an SMS thread runs with: the SMS setting where the version has one (as runs.runtime).
                func.coalesce(AgentVersion.sms_max_tokens, AgentVersion.max_tokens).label("version_sms_max_tokens"),
                func.coalesce(AgentVersion.sms_temperature, AgentVersion.temperature).label("version_sms_temperature"),
                AgentVersion.discard_inbound.label("version_discard_inbound"),
            )
            .select_from(Thread)
            .join(Agent, (Agent.id == Thread.agent_id) & (Agent.workspace_id == self.workspace_id))
            .outerjoin(
                AgentVersion,
                (AgentVersion.id == shown_version) & (AgentVersion.workspace_id == self.workspace_id),
            )
            .where(Thread.workspace_id == self.workspace_id, Thread.public_id == thread_uid)
        )
        return (await self.session.execute(stmt)).one_or_none()
