from __future__ import annotations

from fastapi import APIRouter, Response

from threadline.models import Tag
from threadline.tags import service
from threadline.tags.repository import TagRepository
from threadline.tags.schemas import TagCreate, TagPage, TagRead, TagUpdate
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/tags", tags=["tags"])


@router.post("", status_code=201, response_model=TagRead, summary="Create a tag")
async def create_tag(body: TagCreate, session: SessionDep, auth: WriteAuth) -> TagRead:
    return TagRead.of(await service.create_tag(session, workspace_id=auth.workspace_id, data=body))


@router.get("", response_model=TagPage, summary="List tags")
async def list_tags(session: SessionDep, auth: ReadAuth, query: ListQueryDep) -> TagPage:
    page = await query.resolve(TagRepository(session, auth.workspace_id), Tag, label="tag")
    result = await service.list_tags(session, workspace_id=auth.workspace_id, page=page)
    return TagPage(**list_envelope(result, TagRead.of))


@router.get("/{tag_id}", response_model=TagRead, summary="Get a tag")
async def get_tag(tag_id: str, session: SessionDep, auth: ReadAuth) -> TagRead:
    return TagRead.of(await service.get_tag(session, workspace_id=auth.workspace_id, tag_id=tag_id))


@router.patch("/{tag_id}", response_model=TagRead, summary="Rename or recolour a tag")
async def update_tag(tag_id: str, body: TagUpdate, session: SessionDep, auth: WriteAuth) -> TagRead:
    tag = await service.update_tag(session, workspace_id=auth.workspace_id, tag_id=tag_id, data=body)
    return TagRead.of(tag)


@router.delete("/{tag_id}", status_code=204, response_class=Response, summary="Delete a tag (and take it off threads)")
async def delete_tag(tag_id: str, session: SessionDep, auth: WriteAuth) -> Response:
    await service.delete_tag(session, workspace_id=auth.workspace_id, tag_id=tag_id)
    return Response(status_code=204)
