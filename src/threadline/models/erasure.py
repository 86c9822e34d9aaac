from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.models.columns import enum_column
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class ErasureStatus(StrEnum):
    """queued -> running -> completed; failed once its job has used up its attempts (a new request retries)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Erasure(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """The erasure of one end user (GDPR article 17): a durable job that deletes everything holding their
    words, and what is left of them afterwards.

    ``end_user_id`` is the end user's public id, kept by value (their row is gone at the end): an id says
    nothing about a person by itself, and it is what lets a later request about them answer "erased".
    Nothing else about them is kept: ``erased`` counts what was deleted so far (the progress), ``kept`` the
    figures the law lets a workspace keep (message and run counts, token usage, SMS segments and provider
    cost), without content. ``thread_ids`` is the job's work list (the public ids of every thread that was
    theirs, so that a retry still finds those threads' events once the threads are gone); it is emptied
    when the erasure completes.
    """

    __tablename__ = "erasures"
    __table_args__ = (UniqueConstraint("workspace_id", "end_user_id"),)

    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    status: Mapped[ErasureStatus] = mapped_column(enum_column(ErasureStatus), default=ErasureStatus.QUEUED)
    step: Mapped[str] = mapped_column(String(32), default="queued")
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    planned: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    erased: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    kept: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    thread_ids: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
