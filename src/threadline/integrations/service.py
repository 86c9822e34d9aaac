"""Integrations: the channels (plain API, SMS, WhatsApp) an agent is reachable on."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import Conflict, ValidationFailed
from threadline.integrations.repository import IntegrationRepository
from threadline.integrations.schemas import IntegrationCreate, IntegrationUpdate
from threadline.kit.pagination import Page, PageRequest
from threadline.models import Integration
from threadline.models.enums import ChannelType


class IntegrationWithAgent(NamedTuple):
    integration: Integration
    agent_public_id: uuid.UUID | None


async def create_integration(
    session: AsyncSession, *, workspace_id: int, data: IntegrationCreate
) -> IntegrationWithAgent:
    repo = IntegrationRepository(session, workspace_id)
    agent = await repo.get_agent(data.agent_id, param="agent_id") if data.agent_id is not None else None
    integration = Integration(
        workspace_id=workspace_id,
        type=data.type,
        name=data.name,
        agent_id=agent.id if agent else None,
        enabled=data.enabled,
        settings=data.settings,
    )
    session.add(integration)
    await session.flush()
    return IntegrationWithAgent(integration, agent.public_id if agent else None)


async def default_api_integration(session: AsyncSession, *, workspace_id: int) -> Integration:
    """The integration that messages arriving through an API (not a channel) come in by: the workspace's
    oldest enabled integration of type ``api``, created (named "API") when it has none. Creating it is
    serialized on the workspace's row, so concurrent first callers share one."""
    repo = IntegrationRepository(session, workspace_id)
    found = await repo.oldest_enabled(ChannelType.API)
    if found is not None:
        return found
    await repo.lock_workspace()
    found = await repo.oldest_enabled(ChannelType.API)  # someone may have created it while we waited
    if found is not None:
        return found
    integration = Integration(workspace_id=workspace_id, type=ChannelType.API, name="API", enabled=True, settings={})
    session.add(integration)
    await session.flush()
    return integration


async def get_integration(session: AsyncSession, *, workspace_id: int, integration_id: str) -> IntegrationWithAgent:
    repo = IntegrationRepository(session, workspace_id)
    integration = await repo.get_integration(integration_id)
    return await _with_agent(repo, integration)


async def list_integrations(
    session: AsyncSession,
    *,
    workspace_id: int,
    page: PageRequest,
    type: ChannelType | None = None,
    agent_id: str | None = None,
    enabled: bool | None = None,
) -> Page[IntegrationWithAgent]:
    repo = IntegrationRepository(session, workspace_id)
    agent = await repo.get_agent(agent_id, param="agent_id") if agent_id is not None else None
    result = await repo.list(page, type=type, agent_id=agent.id if agent else None, enabled=enabled)
    agents = await repo.agent_public_ids({i.agent_id for i in result.items if i.agent_id is not None})
    items = [IntegrationWithAgent(i, agents.get(i.agent_id) if i.agent_id is not None else None) for i in result.items]
    return Page(items=items, has_more=result.has_more)


async def update_integration(
    session: AsyncSession, *, workspace_id: int, integration_id: str, data: IntegrationUpdate
) -> IntegrationWithAgent:
    """Changes the fields present in ``data``; ``agent_id: null`` detaches the agent. ``type`` is fixed."""
    repo = IntegrationRepository(session, workspace_id)
    integration = await repo.get_integration(integration_id)
    changes = data.model_dump(include=data.model_fields_set)
    new_type = changes.pop("type", integration.type)
    if new_type != integration.type:
        raise ValidationFailed(
            f"type: an integration's type cannot change (it is '{integration.type.value}'); "
            "create a new integration for another channel",
            param="type",
            code="immutable_field",
        )
    if "agent_id" in changes:
        wanted = changes.pop("agent_id")
        agent = await repo.get_agent(wanted, param="agent_id") if wanted is not None else None
        integration.agent_id = agent.id if agent else None
    for field, value in changes.items():
        setattr(integration, field, value)
    await session.flush()
    return await _with_agent(repo, integration)


async def delete_integration(session: AsyncSession, *, workspace_id: int, integration_id: str) -> None:
    """Deletes an integration no thread came through; messages sent through it keep no integration."""
    repo = IntegrationRepository(session, workspace_id)
    integration = await repo.get_integration(integration_id)
    if await repo.has_threads(integration):
        raise _in_use(integration)
    try:
        async with session.begin_nested():
            await repo.delete_integration(integration)
    except IntegrityError:
        # A thread took it up between the check and the delete.
        raise _in_use(integration) from None


def _in_use(integration: Integration) -> Conflict:
    return Conflict(
        f"integration '{integration.public_id}' cannot be deleted: threads came in through it; "
        "disable it instead (enabled: false)",
        code="integration_in_use",
    )


async def _with_agent(repo: IntegrationRepository, integration: Integration) -> IntegrationWithAgent:
    if integration.agent_id is None:
        return IntegrationWithAgent(integration, None)
    agents = await repo.agent_public_ids({integration.agent_id})
    return IntegrationWithAgent(integration, agents.get(integration.agent_id))
