from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from threadline.audit.deps import request_actor
from threadline.integrations import service
from threadline.integrations.repository import IntegrationRepository
from threadline.integrations.schemas import (
    IntegrationCreate,
    IntegrationPage,
    IntegrationRead,
    IntegrationUpdate,
)
from threadline.kit.schemas import IdRef
from threadline.models import Integration
from threadline.models.enums import ChannelType
from threadline.web.deps import ReadAuth, SessionDep, SettingsDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/integrations", tags=["integrations"])


@router.post(
    "",
    status_code=201,
    response_model=IntegrationRead,
    summary="Create an integration",
    description="`settings` are checked against `type`; every secret the type takes is required in `secrets`, "
    "which are stored encrypted and never returned (`secrets_set` lists their names).",
)
async def create_integration(
    body: IntegrationCreate, request: Request, settings: SettingsDep, session: SessionDep, auth: WriteAuth
) -> IntegrationRead:
    result = await service.create_integration(
        session, workspace_id=auth.workspace_id, data=body, settings=settings, actor=request_actor(auth, request)
    )
    return IntegrationRead.of(*result)


@router.get("", response_model=IntegrationPage, summary="List integrations")
async def list_integrations(
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    type: Annotated[ChannelType | None, Query(description="Only integrations of this type.")] = None,
    agent_id: Annotated[IdRef | None, Query(description="Only integrations routed to this agent.")] = None,
    enabled: Annotated[bool | None, Query(description="Only enabled (true) or disabled (false).")] = None,
) -> IntegrationPage:
    repo = IntegrationRepository(session, auth.workspace_id)
    page = await query.resolve(repo, Integration, label="integration")
    result = await service.list_integrations(
        session, workspace_id=auth.workspace_id, page=page, type=type, agent_id=agent_id, enabled=enabled
    )
    return IntegrationPage(**list_envelope(result, lambda item: IntegrationRead.of(*item)))


@router.get("/{integration_id}", response_model=IntegrationRead, summary="Get an integration")
async def get_integration(integration_id: str, session: SessionDep, auth: ReadAuth) -> IntegrationRead:
    result = await service.get_integration(session, workspace_id=auth.workspace_id, integration_id=integration_id)
    return IntegrationRead.of(*result)


@router.patch(
    "/{integration_id}",
    response_model=IntegrationRead,
    summary="Update an integration",
    description="`type` cannot change after creation; `agent_id: null` detaches the agent. `settings` replaces "
    "the settings whole; `secrets` replaces the secrets it names and keeps the others.",
)
async def update_integration(
    integration_id: str,
    body: IntegrationUpdate,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    auth: WriteAuth,
) -> IntegrationRead:
    result = await service.update_integration(
        session,
        workspace_id=auth.workspace_id,
        integration_id=integration_id,
        data=body,
        settings=settings,
        actor=request_actor(auth, request),
    )
    return IntegrationRead.of(*result)


@router.delete(
    "/{integration_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an integration",
    description="Refused (409 `integration_in_use`) once threads came in through it: disable it instead.",
)
async def delete_integration(integration_id: str, request: Request, session: SessionDep, auth: WriteAuth) -> Response:
    await service.delete_integration(
        session, workspace_id=auth.workspace_id, integration_id=integration_id, actor=request_actor(auth, request)
    )
    return Response(status_code=204)
