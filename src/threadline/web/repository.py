"""All SQL of the HTTP layer: the Idempotency-Key claims (``web.idempotency``). A key belongs to one API key,
which belongs to one workspace, so a claim is found by its API key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.models import IdempotencyKey


async def find_claim(session: AsyncSession, *, api_key_id: int, key: str) -> IdempotencyKey | None:
    result = await session.execute(
        select(IdempotencyKey).where(IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key)
    )
    row: IdempotencyKey | None = result.scalar_one_or_none()
    return row


async def delete_claim(session: AsyncSession, claim_id: int) -> None:
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))


async def delete_expired(session: AsyncSession, *, now: datetime) -> int:
    """Delete every key expired at ``now``; returns how many."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
