from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from threadline.audit.deps import request_actor
from threadline.end_users import service
from threadline.end_users.repository import EndUserRepository
from threadline.end_users.schemas import EndUserCreate, EndUserPage, EndUserRead, EndUserUpdate
from threadline.errors import Forbidden
from threadline.kit.schemas import StorableStr
from threadline.models import EndUser
from threadline.models.enums import ChannelType, Scope
from threadline.privacy import service as privacy
from threadline.privacy.schemas import ERASED_RESPONSES, ErasureRead
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope
from threadline.web.responses import json_response

router = APIRouter(prefix="/end_users", tags=["end users"])


@router.post("", status_code=201, response_model=EndUserRead, summary="Create an end user")
async def create_end_user(body: EndUserCreate, session: SessionDep, auth: WriteAuth) -> EndUserRead:
    end_user = await service.create_end_user(session, workspace_id=auth.workspace_id, data=body)
    return EndUserRead.of(end_user)


@router.get("", response_model=EndUserPage, summary="List end users")
async def list_end_users(
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    channel: Annotated[ChannelType | None, Query(description="Only end users on this channel.")] = None,
    address: Annotated[
        StorableStr | None, Query(max_length=200, description="Only end users with this address.")
    ] = None,
) -> EndUserPage:
    page = await query.resolve(EndUserRepository(session, auth.workspace_id), EndUser, label="end user")
    result = await service.list_end_users(
        session, workspace_id=auth.workspace_id, page=page, channel=channel, address=address
    )
    return EndUserPage(**list_envelope(result, EndUserRead.of))


@router.get("/{end_user_id}", response_model=EndUserRead, responses=ERASED_RESPONSES, summary="Get an end user")
async def get_end_user(end_user_id: str, session: SessionDep, auth: ReadAuth) -> EndUserRead:
    end_user = await service.get_end_user(session, workspace_id=auth.workspace_id, end_user_id=end_user_id)
    return EndUserRead.of(end_user)


@router.patch("/{end_user_id}", response_model=EndUserRead, responses=ERASED_RESPONSES, summary="Update an end user")
async def update_end_user(end_user_id: str, body: EndUserUpdate, session: SessionDep, auth: WriteAuth) -> EndUserRead:
    end_user = await service.update_end_user(
        session, workspace_id=auth.workspace_id, end_user_id=end_user_id, data=body
    )
    return EndUserRead.of(end_user)


@router.delete(
    "/{end_user_id}",
    status_code=204,
    response_class=Response,
    responses={
        202: {
            "model": ErasureRead,
            "description": "With `erase=true`: the erasure, begun (or the one begun already); follow it at its "
            "`Location`, `/v1/erasures/{id}`.",
        },
        **ERASED_RESPONSES,
    },
    summary="Delete an end user, with all their threads and messages",
    description="Deletes the end user **and every thread with them, with all those threads' messages** (tags "
    "and assignments on those threads go too), at once. This cannot be undone.\n\n"
    "With `erase=true` (scope `admin`): the erasure the GDPR asks for (article 17). Everything that holds the "
    "end user's words goes, by a background job: threads, messages, runs, events and webhook deliveries that "
    "name them, stored idempotent responses; only counts and billing figures are kept, without content. "
    "The answer is 202 with the erasure; asking again answers with the same erasure (queued again if it "
    "failed). See docs/privacy.md.",
)
async def delete_end_user(
    end_user_id: str,
    request: Request,
    session: SessionDep,
    auth: WriteAuth,
    erase: Annotated[
        bool,
        Query(description="Erase the end user and everything that names them, in a background job (scope admin)."),
    ] = False,
) -> Response:
    if erase:
        if not auth.allows(Scope.ADMIN):
            raise Forbidden("erasing an end user needs the 'admin' scope")
        erasure = await privacy.request_erasure(
            session, workspace_id=auth.workspace_id, end_user_id=end_user_id, actor=request_actor(auth, request)
        )
        response = json_response(ErasureRead.of(erasure), 202)
        response.headers["Location"] = f"/v1/erasures/{erasure.public_id}"
        return response
    await service.delete_end_user(session, workspace_id=auth.workspace_id, end_user_id=end_user_id)
    return Response(status_code=204)
