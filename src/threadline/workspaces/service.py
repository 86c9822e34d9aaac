"""Workspaces: created from the CLI or on first start; the API never crosses from one to another."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import Conflict, InvalidRequest, NotFound
from threadline.models import Workspace
from threadline.workspaces import numbers


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
    result = await session.execute(select(Workspace).where(Workspace.name == name))
    workspace: Workspace | None = result.scalar_one_or_none()
    return workspace


async def get_workspace(session: AsyncSession, *, name: str) -> Workspace:
    workspace = await find_workspace(session, name=name)
    if workspace is None:
        raise NotFound(f"no workspace named '{name}'")
    return workspace


async def list_workspaces(session: AsyncSession) -> list[Workspace]:
    return list((await session.execute(select(Workspace).order_by(Workspace.id))).scalars())


async def any_workspace(session: AsyncSession) -> bool:
    return (await session.execute(select(Workspace.id).limit(1))).first() is not None
