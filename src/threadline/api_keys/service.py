"""API keys: shown once at creation, stored as a SHA-256 hash, revoked for good."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.api_keys import repository
from threadline.api_keys.repository import ApiKeyRepository
from threadline.audit import service as audit
from threadline.audit.actions import AuditAction
from threadline.auth.keys import display_prefix, generate_key, hash_key
from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest
from threadline.models import ApiKey
from threadline.models.enums import Scope


async def create_key(
    session: AsyncSession, *, workspace_id: int, scopes: Sequence[Scope], actor: audit.Actor, name: str = ""
) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret exists only in the return value (the audit log keeps its scopes)."""
    secret = generate_key()
    key = ApiKey(
        workspace_id=workspace_id,
        name=name,
        prefix=display_prefix(secret),
        key_hash=hash_key(secret),
        scopes=[Scope(s).value for s in dict.fromkeys(scopes)],
    )
    session.add(key)
    await session.flush()
    await audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=AuditAction.API_KEY_CREATED,
        target_id=key.public_id,
        details={"scopes": list(key.scopes)},
    )
    return key, secret


async def list_keys(session: AsyncSession, *, workspace_id: int, page: PageRequest) -> Page[ApiKey]:
    return await ApiKeyRepository(session, workspace_id).page(page)


async def all_keys(session: AsyncSession, *, workspace_id: int | None = None) -> list[ApiKey]:
    return await repository.all_keys(session, workspace_id=workspace_id)


async def get_key(session: AsyncSession, *, workspace_id: int, key_id: str) -> ApiKey:
    return await ApiKeyRepository(session, workspace_id).get_key(key_id)


async def revoke_key(session: AsyncSession, *, workspace_id: int, key_id: str, actor: audit.Actor) -> ApiKey:
    """Revoke a key; the next request made with it is refused. Revoking twice is harmless (and recorded once)."""
    key = await get_key(session, workspace_id=workspace_id, key_id=key_id)
    await _revoke(session, key, actor)
    return key


async def revoke_key_by_public_id(session: AsyncSession, *, key_id: str, actor: audit.Actor) -> ApiKey | None:
    """For the CLI, which acts for the operator of the installation, across workspaces."""
    uid = parse_uuid(key_id)
    if uid is None:
        return None
    key = await repository.by_public_id(session, uid)
    if key is not None:
        await _revoke(session, key, actor)
    return key


async def _revoke(session: AsyncSession, key: ApiKey, actor: audit.Actor) -> None:
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    await session.flush()
    await audit.record(
        session, workspace_id=key.workspace_id, actor=actor, action=AuditAction.API_KEY_REVOKED, target_id=key.public_id
    )
