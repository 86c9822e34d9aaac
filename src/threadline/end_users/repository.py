from __future__ import annotations

from sqlalchemy import delete, select

from threadline.errors import Gone, NotFound
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import EndUser, Erasure
from threadline.models.enums import ChannelType


class EndUserRepository(WorkspaceRepository):
    async def get_end_user(self, end_user_id: str, *, param: str | None = None) -> EndUser:
        """The end user; 404 when there is none here, 410 when they were erased (or are being erased)."""
        end_user = await self.find(EndUser, end_user_id)
        if end_user is not None and end_user.erased_at is None:
            return end_user
        if end_user is not None or await self.was_erased(end_user_id):
            raise Gone(f"end user '{end_user_id}' was erased", param=param, code="end_user_erased")
        raise NotFound(f"no end user with id '{end_user_id}'", param=param)

    async def was_erased(self, end_user_id: str) -> bool:
        """Whether an erasure of this end user began (their row may be gone: the erasure keeps their id)."""
        uid = parse_uuid(end_user_id)
        if uid is None:
            return False
        stmt = select(Erasure.id).where(Erasure.workspace_id == self.workspace_id, Erasure.end_user_id == uid)
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def by_address(self, channel: ChannelType, address: str) -> EndUser | None:
        stmt = self.scoped(EndUser).where(EndUser.channel == channel, EndUser.address == address)
        end_user: EndUser | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return end_user

    async def list(
        self, page: PageRequest, *, channel: ChannelType | None = None, address: str | None = None
    ) -> Page[EndUser]:
        stmt = self.scoped(EndUser).where(EndUser.erased_at.is_(None))
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
