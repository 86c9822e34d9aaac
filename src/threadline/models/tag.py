from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.columns import enum_column
from threadline.models.enums import TagColor
from threadline.models.mixins import IdMixin, WorkspaceMixin


class Tag(IdMixin, WorkspaceMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[TagColor] = mapped_column(enum_column(TagColor), default=TagColor.BLUE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
