from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from threadline.kit.schemas import NOT_BLANK, InputModel, ListPage, OutputModel
from threadline.models import Tag
from threadline.models.enums import TagColor

TagName = Annotated[str, Field(min_length=1, max_length=100, pattern=NOT_BLANK)]


class TagCreate(InputModel):
    name: TagName
    color: TagColor = TagColor.BLUE


class TagUpdate(InputModel):
    name: TagName | None = None
    color: TagColor | None = None


class TagRead(OutputModel):
    object: Literal["tag"] = "tag"
    id: str
    name: str
    color: TagColor
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tag: Tag) -> TagRead:
        return cls(
            id=str(tag.public_id),
            name=tag.name,
            color=tag.color,
            created_at=tag.created_at,
            updated_at=tag.updated_at,
        )


TagPage = ListPage[TagRead]
