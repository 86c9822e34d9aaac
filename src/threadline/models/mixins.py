"""Columns every tenant table shares."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.types import BigIntPK, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.kit.ids import uuid7


class IdMixin:
    """An integer primary key (internal: it counts rows of every workspace, so no surface shows it) and a
    public UUIDv7. Threads and messages also have a ``number`` of their own workspace (workspaces.numbers)."""

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True, default=uuid7)


class WorkspaceMixin:
    workspace_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
