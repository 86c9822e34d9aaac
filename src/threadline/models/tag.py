from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.columns import enum_column
from threadline.models.enums import TagColor
from threadline.models.mixins import IdMixin, WorkspaceMixin


class Tag(IdMixin, WorkspaceMixin, Base):
    __tablename__ = "tags"

    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[TagColor] = mapped_column(enum_column(TagColor), default=TagColor.BLUE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


# Tag names are unique per workspace regardless of case.
Index("uq_tags_workspace_id_lower_name", Tag.workspace_id, func.lower(Tag.name), unique=True)
