from __future__ import annotations

from sqlalchemy import delete, func

from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Tag


class TagRepository(WorkspaceRepository):
    async def get_tag(self, tag_id: str) -> Tag:
        return await self.get(Tag, tag_id, label="tag")

    async def by_name(self, name: str) -> Tag | None:
        stmt = self.scoped(Tag).where(func.lower(Tag.name) == name.lower())
        tag: Tag | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return tag

    async def page(self, page: PageRequest) -> Page[Tag]:
        return await keyset_page(self.session, self.scoped(Tag), Tag.id, page)

    async def delete_tag(self, tag: Tag) -> None:
        await self.session.execute(delete(Tag).where(Tag.id == tag.id, Tag.workspace_id == self.workspace_id))
