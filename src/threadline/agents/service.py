"""Agents and their immutable numbered versions; an agent answers with its current version."""

from __future__ import annotations

from typing import NamedTuple

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.agents.repository import AgentRepository, AgentVersionRepository
from threadline.agents.schemas import AgentCreate, AgentUpdate, AgentVersionCreate, AgentVersionSpec
from threadline.errors import Conflict
from threadline.kit.pagination import Page, PageRequest
from threadline.models import Agent, AgentVersion
from threadline.models.enums import AgentType

log = structlog.get_logger(__name__)

# Attempts at taking the next version number when concurrent writers race for it.
NUMBER_ATTEMPTS = 3


class AgentWithVersion(NamedTuple):
    agent: Agent
    current_version: AgentVersion | None


async def create_agent(session: AsyncSession, *, workspace_id: int, data: AgentCreate) -> AgentWithVersion:
    """Creates the agent; with ``data.version``, also its version 1, which becomes current."""
    agent = Agent(
        workspace_id=workspace_id,
        name=data.name,
        description=data.description,
        type=data.type,
        metadata_=data.metadata,
    )
    session.add(agent)
    await session.flush()
    version = None
    if data.version is not None:
        version = await _add_version(session, agent, data.version)
        agent.current_version_id = version.id
        await session.flush()
    return AgentWithVersion(agent, version)


async def find_agent(session: AsyncSession, *, workspace_id: int, agent_id: str) -> Agent:
    return await AgentRepository(session, workspace_id).get_agent(agent_id)


async def agents_named(session: AsyncSession, *, workspace_id: int, name: str, limit: int = 2) -> list[Agent]:
    """The workspace's agents called exactly ``name``, oldest first, at most ``limit`` (names need not be unique:
    a caller that names an agent by name tells one from several with ``limit=2``)."""
    return list(await AgentRepository(session, workspace_id).named(name, limit=limit))


async def get_agent(session: AsyncSession, *, workspace_id: int, agent_id: str) -> AgentWithVersion:
    repo = AgentRepository(session, workspace_id)
    agent = await repo.get_agent(agent_id)
    return AgentWithVersion(agent, await _current_version(repo, agent))


async def list_agents(
    session: AsyncSession, *, workspace_id: int, page: PageRequest, type: AgentType | None = None
) -> Page[AgentWithVersion]:
    repo = AgentRepository(session, workspace_id)
    result = await repo.list(page, type=type)
    versions = await repo.versions_by_id({a.current_version_id for a in result.items if a.current_version_id})
    items = [
        AgentWithVersion(a, versions.get(a.current_version_id) if a.current_version_id else None) for a in result.items
    ]
    return Page(items=items, has_more=result.has_more)


async def update_agent(
    session: AsyncSession, *, workspace_id: int, agent_id: str, data: AgentUpdate
) -> AgentWithVersion:
    """Changes the fields present in ``data``; ``current_version_id`` switches to another of its versions."""
    repo = AgentRepository(session, workspace_id)
    agent = await repo.get_agent(agent_id)
    changes = data.model_dump(include=data.model_fields_set)
    if "current_version_id" in changes:
        wanted = changes.pop("current_version_id")
        version = None
        if wanted is not None:
            versions = AgentVersionRepository(session, workspace_id, agent.id)
            version = await versions.get_version(wanted, param="current_version_id")
        agent.current_version_id = version.id if version else None
    for field, value in changes.items():
        setattr(agent, "metadata_" if field == "metadata" else field, value)
    await session.flush()
    return AgentWithVersion(agent, await _current_version(repo, agent))


async def delete_agent(session: AsyncSession, *, workspace_id: int, agent_id: str) -> None:
    """Deletes an agent with its versions, unless a thread or an integration still refers to it."""
    repo = AgentRepository(session, workspace_id)
    agent = await repo.get_agent(agent_id)
    if await repo.has_threads(agent):
        raise _in_use(agent, "threads were started with it and keep the agent they began with")
    if await repo.has_integrations(agent):
        raise _in_use(agent, "integrations route to it; point them at another agent (or none) first")
    try:
        async with session.begin_nested():
            await repo.delete_agent(agent)
    except IntegrityError:
        # A thread or integration took it up between the checks and the delete.
        raise _in_use(agent, "a thread or integration refers to it") from None


def _in_use(agent: Agent, why: str) -> Conflict:
    return Conflict(f"agent '{agent.public_id}' cannot be deleted: {why}", code="agent_in_use")


async def create_version(
    session: AsyncSession, *, workspace_id: int, agent_id: str, data: AgentVersionCreate
) -> tuple[Agent, AgentVersion]:
    """Adds the agent's next numbered version and, if ``data.activate``, makes it current."""
    # The row lock makes concurrent version creation for one agent take turns (numbers stay dense).
    agent = await AgentRepository(session, workspace_id).get_agent(agent_id, lock=True)
    version = await _add_version(session, agent, data)
    if data.activate:
        agent.current_version_id = version.id
        await session.flush()
    return agent, version


async def list_versions(
    session: AsyncSession, *, workspace_id: int, agent: Agent, page: PageRequest
) -> Page[AgentVersion]:
    return await AgentVersionRepository(session, workspace_id, agent.id).list(page)


async def get_version(
    session: AsyncSession, *, workspace_id: int, agent_id: str, version_id: str
) -> tuple[Agent, AgentVersion]:
    agent = await AgentRepository(session, workspace_id).get_agent(agent_id)
    version = await AgentVersionRepository(session, workspace_id, agent.id).get_version(version_id)
    return agent, version


async def thread_counts(
    session: AsyncSession, *, workspace_id: int, agents: list[Agent]
) -> dict[int, dict[int | None, int]]:
    """{agent row id: {version row id: threads running it}} for these agents. A thread runs the version it pins,
    or (pinning none) its agent's current one; None counts those that run none (the agent has no version).
    One statement."""
    rows = await AgentRepository(session, workspace_id).thread_counts({a.id for a in agents})
    current = {a.id: a.current_version_id for a in agents}
    counts: dict[int, dict[int | None, int]] = {a.id: {} for a in agents}
    for agent_id, version_id, threads in rows:
        runs = version_id if version_id is not None else current.get(agent_id)
        counts[agent_id][runs] = counts[agent_id].get(runs, 0) + int(threads)
    return counts


async def _current_version(repo: AgentRepository, agent: Agent) -> AgentVersion | None:
    if agent.current_version_id is None:
        return None
    return (await repo.versions_by_id({agent.current_version_id})).get(agent.current_version_id)


async def _add_version(session: AsyncSession, agent: Agent, spec: AgentVersionSpec) -> AgentVersion:
    """Inserts version max+1; unique(agent_id, number) catches a concurrent writer: then try the next."""
    repo = AgentVersionRepository(session, agent.workspace_id, agent.id)
    fields = spec.model_dump(include=set(AgentVersionSpec.model_fields) - {"name"})
    for attempt in range(1, NUMBER_ATTEMPTS + 1):
        number = await repo.next_number()
        version = AgentVersion(
            workspace_id=agent.workspace_id,
            agent_id=agent.id,
            number=number,
            name=spec.name or f"v{number}",
            **fields,
        )
        try:
            async with session.begin_nested():
                session.add(version)
        except IntegrityError:
            log.info("agent_version.number_taken", agent_id=str(agent.public_id), number=number, attempt=attempt)
            continue
        return version
    raise Conflict(
        "another version of this agent was being created at the same time; retry the request",
        code="version_conflict",
    )
