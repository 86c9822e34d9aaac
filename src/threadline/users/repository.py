from __future__ import annotations

from sqlalchemy import delete, func

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import ConsoleSession, User


class UserRepository(WorkspaceRepository):
    async def get_user(self, user_id: str) -> User:
        return await self.get(User, user_id, label="user")

    async def by_email(self, email: str) -> User | None:
        """The user with this email, compared case-insensitively."""
        stmt = self.scoped(User).where(func.lower(User.email) == email.lower()).order_by(User.id).limit(1)
        user: User | None = (await self.session.execute(stmt)).scalars().first()
        return user

    async def list(self, page: PageRequest, *, email: str | None = None) -> Page[User]:
        stmt = self.scoped(User)
        if email is not None:
            stmt = stmt.where(func.lower(User.email) == email.lower())
        return await keyset_page(self.session, stmt, User.id, page)

    async def delete_user(self, user: User) -> None:
        stmt = delete(User).where(User.id == user.id, User.workspace_id == self.workspace_id)
        await self.session.execute(stmt)

    async def end_sessions(self, user: User) -> None:
        """Sign ``user`` out of the console everywhere (their password changed)."""
        stmt = delete(ConsoleSession).where(
            ConsoleSession.user_id == user.id, ConsoleSession.workspace_id == self.workspace_id
        )
        await self.session.execute(stmt)
