from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.models.columns import enum_column
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class Run(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """One agent answer in the making: the end user's messages it answers, the version that answers,
    what it cost and how it ended.

    A thread has at most one ``running`` run (a partial unique index says so to the database) and at
    most one ``queued`` one, which collects the messages that arrive meanwhile (double texts) until
    ``run_at``, the end of the debounce window.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_id_id", "thread_id", "id"),
        Index(
            "uq_runs_one_running_per_thread",
            "thread_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # Deleting a message clears the runs it triggered (ON DELETE SET NULL): found by this, not a scan.
        Index(
            "ix_runs_trigger_message_id",
            "trigger_message_id",
            postgresql_where=text("trigger_message_id IS NOT NULL"),
            sqlite_where=text("trigger_message_id IS NOT NULL"),
        ),
    )

    thread_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("threads.id", ondelete="CASCADE"))
    agent_version_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agent_versions.id", ondelete="RESTRICT"), nullable=True
    )
    status: Mapped[RunStatus] = mapped_column(enum_column(RunStatus), default=RunStatus.QUEUED)
    trigger_message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )
    # The seq of the last end-user message this run answers (later ones wait for the next run).
    input_seq: Mapped[int] = mapped_column(BigInteger)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    usage: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # The tool loop's progress, written as each step completes (runs.checkpoint): a retried attempt resumes
    # from it, so that no model call is paid twice and no tool call that completed runs again.
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
