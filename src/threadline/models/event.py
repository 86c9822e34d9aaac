from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.mixins import IdMixin, WorkspaceMixin


class Event(IdMixin, WorkspaceMixin, Base):
    """Something a client may care about, written in the transaction of the change it describes.

    ``seq`` numbers a workspace's events 1, 2, 3... in commit order, with no gaps: it is taken from
    ``workspaces.last_event_seq`` as the transaction's last write (see events.service), so a consumer
    that has seen N has seen everything up to N and resumes with ``after=N``. ``thread_id`` is the
    thread's public id, kept as a value (not a foreign key) so a thread's events outlive the thread.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "seq"),
        Index("ix_events_workspace_id_thread_id_seq", "workspace_id", "thread_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(100))
    thread_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    changes: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
