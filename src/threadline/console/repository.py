"""All SQL of the console's sign-in: sessions and one-time links are found by the hash of their token before
any workspace is known, so those lookups span workspaces (as API keys' do); the rest is scoped to one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.repository import WorkspaceRepository
from threadline.models import ConsoleSession, SignInLink, User, Workspace

# Built once: this runs on every console request.
_SESSION_BY_HASH = (
    select(ConsoleSession, User, Workspace.name, Workspace.public_id)
    .join(User, User.id == ConsoleSession.user_id)
    .join(Workspace, Workspace.id == ConsoleSession.workspace_id)
    .where(
        ConsoleSession.token_hash == bindparam("token_hash"),
        ConsoleSession.expires_at > bindparam("now"),
        User.workspace_id == ConsoleSession.workspace_id,
    )
)


async def live_session(session: AsyncSession, token_hash: str, now: datetime) -> Any | None:
    """The unexpired session with this token hash, as a row of (ConsoleSession, User, workspace name, workspace
    public id); None when there is none (signed out, expired, its user or workspace deleted)."""
    return (await session.execute(_SESSION_BY_HASH, {"token_hash": token_hash, "now": now})).one_or_none()


async def live_link(session: AsyncSession, token_hash: str, now: datetime) -> Any | None:
    """The unused, unexpired sign-in link with this token hash, as (SignInLink, User, workspace name)."""
    stmt = (
        select(SignInLink, User, Workspace.name)
        .join(User, User.id == SignInLink.user_id)
        .join(Workspace, Workspace.id == SignInLink.workspace_id)
        .where(SignInLink.token_hash == token_hash, SignInLink.used_at.is_(None), SignInLink.expires_at > now)
    )
    return (await session.execute(stmt)).one_or_none()


async def users_by_email(session: AsyncSession, email: str, *, workspace_name: str | None, limit: int) -> list[Any]:
    """Users with this email (any case) and a password, in every workspace or the one named: (User, name)."""
    stmt = (
        select(User, Workspace.name)
        .join(Workspace, Workspace.id == User.workspace_id)
        .where(func.lower(User.email) == email.lower(), User.password_hash.is_not(None))
        .order_by(User.id)
        .limit(limit)
    )
    if workspace_name is not None:
        stmt = stmt.where(Workspace.name == workspace_name)
    return list((await session.execute(stmt)).all())


async def delete_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


class ConsoleRepository(WorkspaceRepository):
    async def add_session(self, row: ConsoleSession) -> None:
        self.session.add(row)
        await self.session.flush()

    async def purge_sessions(self, user_id: int, now: datetime) -> None:
        """Forget the user's expired sessions (done as they sign in: nothing else needs them)."""
        await self.session.execute(
            delete(ConsoleSession).where(
                ConsoleSession.workspace_id == self.workspace_id,
                ConsoleSession.user_id == user_id,
                ConsoleSession.expires_at <= now,
            )
        )

    async def mark_seen(self, session_id: int, now: datetime) -> None:
        await self.session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == session_id, ConsoleSession.workspace_id == self.workspace_id)
            .values(last_seen_at=now)
        )

    async def add_link(self, row: SignInLink) -> None:
        self.session.add(row)
        await self.session.flush()

    async def purge_links(self, user_id: int, now: datetime) -> None:
        """Forget the user's used and expired links (done as a new one is made)."""
        await self.session.execute(
            delete(SignInLink).where(
                SignInLink.workspace_id == self.workspace_id,
                SignInLink.user_id == user_id,
                or_(SignInLink.used_at.is_not(None), SignInLink.expires_at <= now),
            )
        )

    async def use_link(self, link_id: int, now: datetime) -> bool:
        """Mark the link used; False when it already was (or has expired) meanwhile: a concurrent use won."""
        result = await self.session.execute(
            update(SignInLink)
            .where(
                SignInLink.id == link_id,
                SignInLink.workspace_id == self.workspace_id,
                SignInLink.used_at.is_(None),
                SignInLink.expires_at > now,
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
