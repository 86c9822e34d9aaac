"""Threads: the conversation between one agent and one end user, and the human controls on it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import InvalidRequest
from threadline.kit.clock import utcnow
from threadline.kit.pagination import Page, PageRequest
from threadline.models import Agent, AgentVersion, EndUser, Integration, Tag, Thread, User
from threadline.threads.repository import ThreadRepository
from threadline.threads.schemas import ThreadCreate, ThreadFilters, ThreadUpdate


async def create_thread(session: AsyncSession, *, workspace_id: int, data: ThreadCreate) -> Thread:
    repo = ThreadRepository(session, workspace_id)
    agent = await repo.get(Agent, data.agent_id, label="agent", param="agent_id")
    end_user = await repo.get(EndUser, data.end_user_id, label="end user", param="end_user_id")
    version_id = agent.current_version_id
    if data.agent_version_id is not None:
        version = await repo.get(AgentVersion, data.agent_version_id, label="agent version", param="agent_version_id")
        if version.agent_id != agent.id:
            raise InvalidRequest("agent_version_id is a version of another agent", param="agent_version_id")
        version_id = version.id
    integration_id = None
    if data.integration_id is not None:
        integration = await repo.get(Integration, data.integration_id, label="integration", param="integration_id")
        integration_id = integration.id
    thread = Thread(
        workspace_id=workspace_id,
        agent_id=agent.id,
        agent_version_id=version_id,
        end_user_id=end_user.id,
        integration_id=integration_id,
        active=data.active,
        blocked=data.blocked,
        metadata_=data.metadata,
        message_count=0,
        last_seq=0,
    )
    thread.tags = await repo.many(Tag, data.tags, param="tags", label="tag")
    thread.assignees = await repo.many(User, data.assigned_to, param="assigned_to", label="user")
    session.add(thread)
    await session.flush()
    return thread


async def get_thread(session: AsyncSession, *, workspace_id: int, thread_id: str) -> Thread:
    return await ThreadRepository(session, workspace_id).get_thread(thread_id)


async def list_threads(
    session: AsyncSession, *, workspace_id: int, page: PageRequest, filters: ThreadFilters
) -> Page[Thread]:
    return await ThreadRepository(session, workspace_id).page(page, filters)


async def update_thread(session: AsyncSession, *, workspace_id: int, thread_id: str, data: ThreadUpdate) -> Thread:
    """Change only the fields present in ``data``; tags and assigned_to replace the whole set."""
    repo = ThreadRepository(session, workspace_id)
    thread = await repo.get_thread(thread_id)
    fields = data.model_fields_set
    if "active" in fields and data.active is not None:
        thread.active = data.active
    if "blocked" in fields and data.blocked is not None:
        thread.blocked = data.blocked
    if "metadata" in fields:
        thread.metadata_ = data.metadata or {}
    if "tags" in fields:
        thread.tags = await repo.many(Tag, data.tags or [], param="tags", label="tag")
    if "assigned_to" in fields:
        thread.assignees = await repo.many(User, data.assigned_to or [], param="assigned_to", label="user")
    thread.updated_at = utcnow()
    await session.flush()
    return thread


async def delete_thread(session: AsyncSession, *, workspace_id: int, thread_id: str) -> None:
    """Delete a thread and all of its messages."""
    repo = ThreadRepository(session, workspace_id)
    thread = await repo.get_thread(thread_id)
    await repo.delete_thread(thread)
