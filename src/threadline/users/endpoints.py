from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from threadline.kit.schemas import StorableStr
from threadline.models import User
from threadline.users import service
from threadline.users.repository import UserRepository
from threadline.users.schemas import UserCreate, UserPage, UserRead, UserUpdate
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=201, response_model=UserRead, summary="Create a user (a human operator)")
async def create_user(body: UserCreate, session: SessionDep, auth: WriteAuth) -> UserRead:
    return UserRead.of(await service.create_user(session, workspace_id=auth.workspace_id, data=body))


@router.get("", response_model=UserPage, summary="List users")
async def list_users(
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    email: Annotated[
        StorableStr | None, Query(max_length=320, description="Only the user with this email (any case).")
    ] = None,
) -> UserPage:
    page = await query.resolve(UserRepository(session, auth.workspace_id), User, label="user")
    result = await service.list_users(session, workspace_id=auth.workspace_id, page=page, email=email)
    return UserPage(**list_envelope(result, UserRead.of))


@router.get("/{user_id}", response_model=UserRead, summary="Get a user")
async def get_user(user_id: str, session: SessionDep, auth: ReadAuth) -> UserRead:
    return UserRead.of(await service.get_user(session, workspace_id=auth.workspace_id, user_id=user_id))


@router.patch("/{user_id}", response_model=UserRead, summary="Update a user")
async def update_user(user_id: str, body: UserUpdate, session: SessionDep, auth: WriteAuth) -> UserRead:
    user = await service.update_user(session, workspace_id=auth.workspace_id, user_id=user_id, data=body)
    return UserRead.of(user)


@router.delete(
    "/{user_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a user",
    description="Removes the user. Their thread assignments are removed with them; messages they wrote "
    "stay, with no author (`sent_by_user_id` becomes null).",
)
async def delete_user(user_id: str, session: SessionDep, auth: WriteAuth) -> Response:
    await service.delete_user(session, workspace_id=auth.workspace_id, user_id=user_id)
    return Response(status_code=204)
