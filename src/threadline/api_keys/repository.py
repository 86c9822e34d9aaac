"""All SQL of API keys. ``ApiKeyRepository`` is built with the workspace; ``all_keys`` and ``by_public_id`` are
the operator's cross-workspace view (the CLI acts for the installation)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import ApiKey


class ApiKeyRepository(WorkspaceRepository):
    async def get_key(self, key_id: str) -> ApiKey:
        return await self.get(ApiKey, key_id, label="API key")

    async def page(self, page: PageRequest) -> Page[ApiKey]:
        return await keyset_page(self.session, self.scoped(ApiKey), ApiKey.id, page)


async def all_keys(session: AsyncSession, *, workspace_id: int | None = None) -> list[ApiKey]:
    """Every key, oldest first; only those of ``workspace_id`` when given."""
    stmt = select(ApiKey).order_by(ApiKey.id)
    if workspace_id is not None:
        stmt = stmt.where(ApiKey.workspace_id == workspace_id)
    return list((await session.execute(stmt)).scalars())


async def by_public_id(session: AsyncSession, public_id: uuid.UUID) -> ApiKey | None:
    key: ApiKey | None = (
        await session.execute(select(ApiKey).where(ApiKey.public_id == public_id))
    ).scalar_one_or_none()
    return key
