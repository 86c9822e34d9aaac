from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import BigIntPK, JSONType, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.columns import enum_column
from threadline.models.enums import JobState
from threadline.models.mixins import IdMixin, TimestampMixin


class Job(IdMixin, TimestampMixin, Base):
    """A unit of durable background work, claimed by one worker at a time under a lease that expires.

    ``run_at`` is when the next attempt may start; ``attempts`` counts the attempts started. A job whose
    worker dies keeps ``state=running`` until its lease expires, and is then claimed again.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "dedupe_key"),
        Index("ix_jobs_state_run_at", "state", "run_at"),
    )

    workspace_id: Mapped[int | None] = mapped_column(
        BigIntPK, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[JobState] = mapped_column(enum_column(JobState), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
