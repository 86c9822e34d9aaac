from __future__ import annotations

from sqlalchemy import delete, func

from threadline.errors import NotFound
from threadline.kit.ids import parse_uuid
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

    async def list(self, page: PageRequest) -> Page[Tag]:
        return await keyset_page(self.session, self.scoped(Tag), Tag.id, page, key_of=lambda t: t.id)

    async def many(self, public_ids: list[str], *, param: str) -> list[Tag]:
        """The tags named by ``public_ids`` (each must exist in this workspace), in the order given."""
        uids = [parse_uuid(p) for p in public_ids]
        found = {}
        valid = [u for u in uids if u is not None]
        if valid:
            rows = (await self.session.execute(self.scoped(Tag).where(Tag.public_id.in_(valid)))).scalars()
            found = {t.public_id: t for t in rows}
        for raw, uid in zip(public_ids, uids, strict=True):
            if uid is None or uid not in found:
                raise NotFound(f"no tag with id '{raw}'", param=param)
        return [found[u] for u in dict.fromkeys(uids) if u is not None]

    async def delete_tag(self, tag: Tag) -> None:
        await self.session.execute(delete(Tag).where(Tag.id == tag.id, Tag.workspace_id == self.workspace_id))
