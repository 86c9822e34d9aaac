from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.mixins import IdMixin


class Workspace(IdMixin, Base):
    """The tenant boundary: every other row belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The seq of the workspace's last event; bumped (and so row-locked) last thing before a commit.
    last_event_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
