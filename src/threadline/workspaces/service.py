"""Workspaces: created from the CLI or on first start; the API never crosses from one to another."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import Conflict, InvalidRequest, NotFound
from threadline.models import Workspace
from threadline.workspaces import numbers, repository


async def create_workspace(session: AsyncSession, *, name: str) -> Workspace:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("workspace name must be 1 to 200 characters", param="name")
    if await find_workspace(session, name=name) is not None:
        raise Conflict(f"a workspace named '{name}' already exists", param="name")
    workspace = Workspace(name=name)
    session.add(workspace)
    await session.flush()
    await numbers.create_counters(session, workspace_id=workspace.id)
    return workspace


async def find_workspace(session: AsyncSession, *, name: str) -> Workspace | None:
    return await repository.by_name(session, name)


async def get_workspace(session: AsyncSession, *, name: str) -> Workspace:
    workspace = await find_workspace(session, name=name)
    if workspace is None:
        raise NotFound(f"no workspace named '{name}'")
    return workspace


async def list_workspaces(session: AsyncSession) -> list[Workspace]:
    return await repository.all_workspaces(session)


async def any_workspace(session: AsyncSession) -> bool:
    return await repository.any_workspace(session)
