"""Tags: workspace-wide labels (name unique per workspace, case-insensitively) put on threads."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import Conflict
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest
from threadline.models import Tag
from threadline.models.enums import TagColor
from threadline.tags.repository import TagRepository
from threadline.tags.schemas import TagCreate, TagUpdate


async def create_tag(session: AsyncSession, *, workspace_id: int, data: TagCreate) -> Tag:
    repo = TagRepository(session, workspace_id)
    if await repo.by_name(data.name) is not None:
        raise Conflict(f"a tag named '{data.name}' already exists", param="name", code="tag_exists")
    return await _add(session, workspace_id=workspace_id, name=data.name, color=data.color)


async def get_or_create(session: AsyncSession, workspace_id: int, ref: str) -> Tag:
    """The tag ``ref`` names: the one with that id, else the one with that name (any case), else a new tag of
    that name (blue). Names are unique per workspace regardless of case, as ``create_tag`` keeps them."""
    repo = TagRepository(session, workspace_id)
    if parse_uuid(ref) is not None:
        by_id = await repo.find(Tag, ref)
        if by_id is not None:
            return by_id
    name = ref.strip()[:100]
    existing = await repo.by_name(name)
    if existing is not None:
        return existing
    return await _add(session, workspace_id=workspace_id, name=name, color=TagColor.BLUE)


async def _add(session: AsyncSession, *, workspace_id: int, name: str, color: TagColor) -> Tag:
    """A new tag, once its name is known to be free (case-insensitively) in the workspace."""
    tag = Tag(workspace_id=workspace_id, name=name, color=color)
    session.add(tag)
    await session.flush()
    return tag


async def get_tag(session: AsyncSession, *, workspace_id: int, tag_id: str) -> Tag:
    return await TagRepository(session, workspace_id).get_tag(tag_id)


async def list_tags(session: AsyncSession, *, workspace_id: int, page: PageRequest) -> Page[Tag]:
    return await TagRepository(session, workspace_id).page(page)


async def update_tag(session: AsyncSession, *, workspace_id: int, tag_id: str, data: TagUpdate) -> Tag:
    repo = TagRepository(session, workspace_id)
    tag = await repo.get_tag(tag_id)
    if data.name is not None and data.name.lower() != tag.name.lower():
        if await repo.by_name(data.name) is not None:
            raise Conflict(f"a tag named '{data.name}' already exists", param="name", code="tag_exists")
    if data.name is not None:
        tag.name = data.name
    if data.color is not None:
        tag.color = data.color
    await session.flush()
    return tag


async def delete_tag(session: AsyncSession, *, workspace_id: int, tag_id: str) -> None:
    """Deleting a tag takes it off every thread that carries it."""
    repo = TagRepository(session, workspace_id)
    tag = await repo.get_tag(tag_id)
    await repo.delete_tag(tag)
