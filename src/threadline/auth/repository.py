"""All SQL of authentication. A key is found by its hash before any workspace is known, so these queries
span workspaces (as the job queue's do)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.models import ApiKey, Workspace

# Built once: this runs on every request.
_BY_HASH = (
    select(ApiKey.id, ApiKey.scopes, ApiKey.workspace_id, Workspace.public_id)
    .join(Workspace, Workspace.id == ApiKey.workspace_id)
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
)


async def live_key_by_hash(session: AsyncSession, key_hash: str) -> Any | None:
    """The unrevoked key with this hash, as a row of (id, scopes, workspace_id, public_id of its workspace)."""
    return (await session.execute(_BY_HASH, {"key_hash": key_hash})).one_or_none()


async def live_key_ids(session: AsyncSession, api_key_ids: list[int]) -> set[int]:
    """Those of ``api_key_ids`` that still authenticate: not revoked, their workspace not deleted."""
    rows = await session.execute(
        select(ApiKey.id)
        .join(Workspace, Workspace.id == ApiKey.workspace_id)
        .where(ApiKey.id.in_(api_key_ids), ApiKey.revoked_at.is_(None))
    )
    return set(rows.scalars())


async def key_public_ids(session: AsyncSession, api_key_ids: list[int]) -> dict[int, uuid.UUID]:
    """{row id: public id} of those of ``api_key_ids`` that still exist (for logs, which name keys publicly)."""
    rows = await session.execute(select(ApiKey.id, ApiKey.public_id).where(ApiKey.id.in_(api_key_ids)))
    return {row.id: row.public_id for row in rows}


async def set_last_used(session: AsyncSession, api_key_id: int, at: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == api_key_id).values(last_used_at=at))
