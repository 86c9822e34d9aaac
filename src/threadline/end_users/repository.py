from __future__ import annotations

from sqlalchemy import delete

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import EndUser
from threadline.models.enums import ChannelType


class EndUserRepository(WorkspaceRepository):
    async def get_end_user(self, end_user_id: str) -> EndUser:
        return await self.get(EndUser, end_user_id, label="end user")

    async def by_address(self, channel: ChannelType, address: str) -> EndUser | None:
        stmt = self.scoped(EndUser).where(EndUser.channel == channel, EndUser.address == address)
        end_user: EndUser | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return end_user

    async def list(
        self, page: PageRequest, *, channel: ChannelType | None = None, address: str | None = None
    ) -> Page[EndUser]:
        stmt = self.scoped(EndUser)
        if channel is not None:
            stmt = stmt.where(EndUser.channel == channel)
        if address is not None:
            stmt = stmt.where(EndUser.address == address)
        return await keyset_page(self.session, stmt, EndUser.id, page)

    async def delete_end_user(self, end_user: EndUser) -> None:
        """Deletes the row; ON DELETE CASCADE in the database removes their threads and those messages."""
        await self.session.execute(
            delete(EndUser).where(EndUser.id == end_user.id, EndUser.workspace_id == self.workspace_id)
        )
