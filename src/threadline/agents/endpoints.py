from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response

from threadline.agents import service
from threadline.agents.repository import AgentRepository, AgentVersionRepository
from threadline.agents.schemas import (
    AgentCreate,
    AgentPage,
    AgentRead,
    AgentUpdate,
    AgentVersionCreate,
    AgentVersionPage,
    AgentVersionRead,
    AgentVersionSpec,
)
from threadline.config import Settings
from threadline.errors import ValidationFailed
from threadline.models import Agent, AgentVersion
from threadline.models.enums import AgentMode, AgentType
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/agents", tags=["agents"])
VersionT = TypeVar("VersionT", bound=AgentVersionSpec)


@router.post(
    "",
    status_code=201,
    response_model=AgentRead,
    summary="Create an agent",
    description="With `version`, the agent's first version is created too, as number 1, and becomes current.",
)
async def create_agent(body: AgentCreate, request: Request, session: SessionDep, auth: WriteAuth) -> AgentRead:
    if body.version is not None:
        _check_provider(body.version, request.app.state.settings, param="version")
        body = body.model_copy(update={"version": _sealed(body.version, request.app.state.settings)})
    agent, version = await service.create_agent(session, workspace_id=auth.workspace_id, data=body)
    return AgentRead.of(agent, version)


@router.get("", response_model=AgentPage, summary="List agents")
async def list_agents(
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    type: Annotated[AgentType | None, Query(description="Only agents of this type.")] = None,
) -> AgentPage:
    page = await query.resolve(AgentRepository(session, auth.workspace_id), Agent, label="agent")
    result = await service.list_agents(session, workspace_id=auth.workspace_id, page=page, type=type)
    return AgentPage(**list_envelope(result, lambda item: AgentRead.of(*item)))


@router.get("/{agent_id}", response_model=AgentRead, summary="Get an agent with its current version")
async def get_agent(agent_id: str, session: SessionDep, auth: ReadAuth) -> AgentRead:
    agent, version = await service.get_agent(session, workspace_id=auth.workspace_id, agent_id=agent_id)
    return AgentRead.of(agent, version)


@router.patch(
    "/{agent_id}",
    response_model=AgentRead,
    summary="Update an agent, or switch its current version",
    description="`current_version_id` rolls the agent back or forward to one of its existing versions. "
    "To change how the agent behaves, add a version (`POST /v1/agents/{agent_id}/versions`).",
)
async def update_agent(agent_id: str, body: AgentUpdate, session: SessionDep, auth: WriteAuth) -> AgentRead:
    agent, version = await service.update_agent(session, workspace_id=auth.workspace_id, agent_id=agent_id, data=body)
    return AgentRead.of(agent, version)


@router.delete(
    "/{agent_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an agent and its versions",
    description="Refused (409 `agent_in_use`) while any thread or integration refers to the agent.",
)
async def delete_agent(agent_id: str, session: SessionDep, auth: WriteAuth) -> Response:
    await service.delete_agent(session, workspace_id=auth.workspace_id, agent_id=agent_id)
    return Response(status_code=204)


@router.post(
    "/{agent_id}/versions",
    status_code=201,
    response_model=AgentVersionRead,
    summary="Add a version to an agent",
    description="Versions are immutable and numbered 1, 2, 3... per agent. With `activate` (the default) "
    "the new version becomes the agent's current one.",
)
async def create_version(
    agent_id: str, body: AgentVersionCreate, request: Request, session: SessionDep, auth: WriteAuth
) -> AgentVersionRead:
    _check_provider(body, request.app.state.settings, param=None)
    body = _sealed(body, request.app.state.settings)
    agent, version = await service.create_version(session, workspace_id=auth.workspace_id, agent_id=agent_id, data=body)
    return AgentVersionRead.of(version, agent=agent)


@router.get("/{agent_id}/versions", response_model=AgentVersionPage, summary="List an agent's versions")
async def list_versions(agent_id: str, session: SessionDep, auth: ReadAuth, query: ListQueryDep) -> AgentVersionPage:
    agent = await service.find_agent(session, workspace_id=auth.workspace_id, agent_id=agent_id)
    repo = AgentVersionRepository(session, auth.workspace_id, agent.id)
    page = await query.resolve(repo, AgentVersion, label="version of this agent")
    result = await service.list_versions(session, workspace_id=auth.workspace_id, agent=agent, page=page)
    return AgentVersionPage(**list_envelope(result, lambda v: AgentVersionRead.of(v, agent=agent)))


@router.get("/{agent_id}/versions/{version_id}", response_model=AgentVersionRead, summary="Get an agent version")
async def get_version(agent_id: str, version_id: str, session: SessionDep, auth: ReadAuth) -> AgentVersionRead:
    agent, version = await service.get_version(
        session, workspace_id=auth.workspace_id, agent_id=agent_id, version_id=version_id
    )
    return AgentVersionRead.of(version, agent=agent)


def _check_provider(spec: AgentVersionSpec, settings: Settings, *, param: str | None) -> None:
    """A PROMPT version must name a provider that can do what it asks (checked now, not at run time)."""
    if spec.mode is not AgentMode.PROMPT:
        return
    from threadline.engines.providers.registry import DEFAULT_PROVIDER, check_version, needs_model

    def where(field: str) -> str:
        return f"{param}.{field}" if param else field

    provider = spec.provider or DEFAULT_PROVIDER
    try:
        # The provider first: whether the version must name a model is the provider's to say (`local` serves one).
        model_required = needs_model(provider)
    except ValueError as exc:
        raise ValidationFailed(str(exc), param=where("provider")) from None
    if model_required and not spec.model:
        raise ValidationFailed(
            f"a PROMPT agent version of the {provider!r} provider needs a model", param=where("model")
        )
    try:
        check_version(provider, spec.model, spec.tools, spec.settings, settings)
    except ValueError as exc:
        raise ValidationFailed(str(exc), param=where("provider" if "provider" in str(exc) else "settings")) from None


def _sealed(spec: VersionT, settings: Settings) -> VersionT:
    """The version with its HTTP tools' header values encrypted (they hold credentials)."""
    from threadline.engines.tools import seal_headers
    from threadline.kit.secrets import secret_box

    if not any(t.get("type") == "http" and t.get("headers") for t in spec.tools):
        return spec
    return spec.model_copy(update={"tools": seal_headers(spec.tools, secret_box(settings))})
