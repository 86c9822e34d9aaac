from __future__ import annotations

from fastapi import APIRouter, Request

from threadline.api_keys import service
from threadline.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from threadline.audit.deps import request_actor
from threadline.kit.repository import WorkspaceRepository
from threadline.models import ApiKey
from threadline.web.deps import AdminAuth, SessionDep
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/api_keys", tags=["api keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated, summary="Create an API key (shown once)")
async def create_api_key(body: ApiKeyCreate, request: Request, session: SessionDep, auth: AdminAuth) -> ApiKeyCreated:
    key, secret = await service.create_key(
        session,
        workspace_id=auth.workspace_id,
        scopes=body.scopes,
        name=body.name,
        actor=request_actor(auth, request),
    )
    return ApiKeyCreated(**ApiKeyRead.of(key).model_dump(), key=secret)


@router.get("", response_model=ApiKeyPage, summary="List API keys (never their secrets)")
async def list_api_keys(session: SessionDep, auth: AdminAuth, query: ListQueryDep) -> ApiKeyPage:
    page = await query.resolve(WorkspaceRepository(session, auth.workspace_id), ApiKey, label="API key")
    result = await service.list_keys(session, workspace_id=auth.workspace_id, page=page)
    return ApiKeyPage(**list_envelope(result, ApiKeyRead.of))


@router.get("/{key_id}", response_model=ApiKeyRead, summary="Get an API key")
async def get_api_key(key_id: str, session: SessionDep, auth: AdminAuth) -> ApiKeyRead:
    return ApiKeyRead.of(await service.get_key(session, workspace_id=auth.workspace_id, key_id=key_id))


@router.post("/{key_id}/revoke", response_model=ApiKeyRead, summary="Revoke an API key")
async def revoke_api_key(key_id: str, request: Request, session: SessionDep, auth: AdminAuth) -> ApiKeyRead:
    key = await service.revoke_key(
        session, workspace_id=auth.workspace_id, key_id=key_id, actor=request_actor(auth, request)
    )
    return ApiKeyRead.of(key)
