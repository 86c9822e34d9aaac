"""Threads: the conversation between one agent and one end user, and the human controls on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.agents.settings import EffectiveSettings, effective_settings
from threadline.audit import service as audit
from threadline.audit.actions import AuditAction
from threadline.end_users.repository import EndUserRepository
from threadline.errors import InvalidRequest, NotFound
from threadline.events import service as events
from threadline.events.types import EventType
from threadline.integrations import service as integrations
from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest
from threadline.models import Agent, AgentVersion, EndUser, Integration, Tag, Thread, User
from threadline.models.enums import ChannelType
from threadline.threads.repository import ThreadRepository
from threadline.threads.schemas import ThreadCreate, ThreadFilters, ThreadUpdate, thread_read
from threadline.workspaces import numbers


@dataclass(frozen=True, slots=True)
class ThreadUpdated:
    thread: Thread
    changes: list[str]  # the fields that changed, in ThreadUpdate's names

    @property
    def taken_over(self) -> bool:
        """Whether this update handed the thread from the agent to a human."""
        return "active" in self.changes and not self.thread.active


async def create_thread(session: AsyncSession, *, workspace_id: int, data: ThreadCreate) -> Thread:
    repo = ThreadRepository(session, workspace_id)
    agent = await repo.get(Agent, data.agent_id, label="agent", param="agent_id")
    # Locked, as thread_between does: an erasure of the end user that begins meanwhile waits for this thread
    # (and marks it), or has begun and they are gone (410).
    end_user = await repo.lock_end_user(data.end_user_id)
    if end_user is None:
        await EndUserRepository(session, workspace_id).get_end_user(data.end_user_id, param="end_user_id")
        raise NotFound(f"no end user with id '{data.end_user_id}'", param="end_user_id")
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
        number=await numbers.take(session, workspace_id=workspace_id, of=Thread),
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
    await _record(session, repo, thread, EventType.THREAD_CREATED)
    return thread


async def _record(
    session: AsyncSession, repo: ThreadRepository, thread: Thread, type: EventType, changes: list[str] | None = None
) -> None:
    data = thread_read(thread, await repo.references([thread]))
    events.record(
        session, workspace_id=repo.workspace_id, type=type, data=data, thread_id=thread.public_id, changes=changes
    )


async def thread_key(session: AsyncSession, *, workspace_id: int, thread_id: str | int) -> int:
    """The integer key of a thread of this workspace, named by its public id (a UUID string) or by its
    number in the workspace (``number``); 404 for anything else, including another workspace's thread."""
    repo = ThreadRepository(session, workspace_id)
    key = await (repo.key_by_number(thread_id) if isinstance(thread_id, int) else repo.thread_key(thread_id))
    if key is None:
        raise NotFound(f"no thread with id '{thread_id}'")
    return key


async def thread_between(session: AsyncSession, *, workspace_id: int, agent_id: str, end_user_id: str) -> Thread:
    """The conversation between an agent and an end user: their most recent thread, else a new one (the
    agent's current version pinned, through the workspace's default API integration). 404 naming the
    field when either is not in this workspace.

    Finding and opening are serialized on the end user's row, locked until the transaction ends, so two
    concurrent first messages from one end user open one thread, not two."""
    repo = ThreadRepository(session, workspace_id)
    agent = await repo.get(Agent, agent_id, label="agent", param="agent_id")
    end_user = await repo.lock_end_user(end_user_id)
    if end_user is None:
        raise NotFound(f"no end user with id '{end_user_id}'", param="end_user_id")
    thread = await repo.latest_between(agent.id, end_user.id)
    if thread is not None:
        return thread
    integration = await integrations.default_api_integration(session, workspace_id=workspace_id)
    data = ThreadCreate(
        agent_id=str(agent.public_id), end_user_id=str(end_user.public_id), integration_id=str(integration.public_id)
    )
    return await create_thread(session, workspace_id=workspace_id, data=data)


class ThreadParties(NamedTuple):
    """A thread with the rows it names, as they are now."""

    thread: Thread
    agent: Agent
    end_user: EndUser
    integration: Integration | None


@dataclass(frozen=True, slots=True)
class ThreadWithAgent:
    """A thread with its agent and the version it runs (``row``: the columns of
    ``ThreadRepository.with_agent``), and what that version's settings come to on SMS."""

    row: Any
    sms: EffectiveSettings


async def thread_with_agent(session: AsyncSession, *, workspace_id: int, thread_id: str) -> ThreadWithAgent | None:
    """None when the thread is not in this workspace."""
    uid = parse_uuid(thread_id)
    row = await ThreadRepository(session, workspace_id).with_agent(uid) if uid is not None else None
    if row is None:
        return None
    return ThreadWithAgent(row, effective_settings(row, ChannelType.SMS))


async def thread_parties(session: AsyncSession, *, workspace_id: int, thread_key: int) -> ThreadParties:
    """The thread (resolved with ``thread_key``; tags and assignees loaded) with its agent, end user and
    integration, re-read from the database."""
    found = await ThreadRepository(session, workspace_id).with_parties(thread_key)
    if found is None:
        raise NotFound("the thread is gone")  # deleted meanwhile; its key is internal, never shown
    return ThreadParties(*found)


async def get_thread(session: AsyncSession, *, workspace_id: int, thread_id: str) -> Thread:
    return await ThreadRepository(session, workspace_id).get_thread(thread_id)


async def list_threads(
    session: AsyncSession, *, workspace_id: int, page: PageRequest, filters: ThreadFilters
) -> Page[Thread]:
    return await ThreadRepository(session, workspace_id).page(page, filters)


async def update_thread(
    session: AsyncSession,
    *,
    workspace_id: int,
    thread_id: str,
    data: ThreadUpdate,
    actor: audit.Actor,
    by: str = "api",
    handoff_reason: str | None = None,
) -> ThreadUpdated:
    """Change only the fields present in ``data``; tags and assigned_to replace the whole set. Returns the
    thread and the names of the fields that changed.

    ``active`` going false is a handoff to a human (``thread.handoff_started``), going true hands the
    thread back to the agent (``thread.handoff_ended``); ``by`` says who did it (api, agent, flow). Handoffs
    and (un)blocking are recorded in the audit log as done by ``actor``. What a person's taking over does to
    the agent's messages still waiting to go out is ``flows.threads``'s."""
    repo = ThreadRepository(session, workspace_id)
    thread = await repo.get_thread(thread_id)
    fields = data.model_fields_set
    changes: list[str] = []
    if "active" in fields and data.active is not None and data.active != thread.active:
        thread.active = data.active
        changes.append("active")
    if "blocked" in fields and data.blocked is not None and data.blocked != thread.blocked:
        thread.blocked = data.blocked
        changes.append("blocked")
    if "metadata" in fields and (data.metadata or {}) != thread.metadata_:
        thread.metadata_ = data.metadata or {}
        changes.append("metadata")
    if "tags" in fields:
        tags = await repo.many(Tag, data.tags or [], param="tags", label="tag")
        if {t.id for t in tags} != {t.id for t in thread.tags}:
            thread.tags = tags
            changes.append("tags")
    if "assigned_to" in fields:
        users = await repo.many(User, data.assigned_to or [], param="assigned_to", label="user")
        if {u.id for u in users} != {u.id for u in thread.assignees}:
            thread.assignees = users
            changes.append("assigned_to")
    if changes:
        thread.updated_at = utcnow()
        await session.flush()
        await _record(session, repo, thread, EventType.THREAD_UPDATED, changes)
        if "active" in changes:
            events.record(
                session,
                workspace_id=workspace_id,
                type=EventType.THREAD_HANDOFF_ENDED if thread.active else EventType.THREAD_HANDOFF_STARTED,
                data={
                    "object": "handoff",
                    "thread_id": str(thread.public_id),
                    "to": "agent" if thread.active else "human",
                    "by": by,
                    "reason": handoff_reason,
                    "assigned_to": [str(u.public_id) for u in thread.assignees],
                },
                thread_id=thread.public_id,
            )
        await _audit(session, workspace_id, thread, changes, actor)
    return ThreadUpdated(thread, changes)


async def _audit(
    session: AsyncSession, workspace_id: int, thread: Thread, changes: list[str], actor: audit.Actor
) -> None:
    actions = []
    if "active" in changes:
        actions.append(AuditAction.THREAD_HANDED_BACK if thread.active else AuditAction.THREAD_HANDED_OFF)
    if "blocked" in changes:
        actions.append(AuditAction.THREAD_BLOCKED if thread.blocked else AuditAction.THREAD_UNBLOCKED)
    for action in actions:
        await audit.record(session, workspace_id=workspace_id, actor=actor, action=action, target_id=thread.public_id)


async def delete_thread(session: AsyncSession, *, workspace_id: int, thread_id: str) -> None:
    """Delete a thread and all of its messages."""
    repo = ThreadRepository(session, workspace_id)
    thread = await repo.get_thread(thread_id)
    public_id = thread.public_id
    await repo.delete_thread(thread)
    events.record(
        session,
        workspace_id=workspace_id,
        type=EventType.THREAD_DELETED,
        data={"object": "thread", "id": str(public_id), "deleted": True},
        thread_id=public_id,
    )
