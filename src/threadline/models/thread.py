from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, Table, func, text, type_coerce
from sqlalchemy.orm import Mapped, mapped_column, relationship

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin
from threadline.models.tag import Tag
from threadline.models.user import User

thread_tags = Table(
    "thread_tags",
    Base.metadata,
    Column("thread_id", BigInteger, ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", BigInteger, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
)

thread_assignees = Table(
    "thread_assignees",
    Base.metadata,
    Column("thread_id", BigInteger, ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
)


class Thread(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """A conversation between an agent and an end user.

    ``last_seq`` hands out each message's place in the thread; the UPDATE that bumps it also locks the
    row, so messages of one thread become visible in exactly their ``seq`` order (see messages.service).
    ``message_count`` and ``last_message_at`` are kept in that same UPDATE: exact, never counted.
    ``number`` is the thread's integer id within its workspace (/v1's ``number``, camelAI's ``thread_id``).
    """

    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_workspace_id_id", "workspace_id", "id"),
        Index("uq_threads_workspace_id_number", "workspace_id", "number", unique=True),
        Index("ix_threads_agent_id_end_user_id", "agent_id", "end_user_id"),
        Index("ix_threads_workspace_id_updated_at", "workspace_id", "updated_at"),
    )

    number: Mapped[int] = mapped_column(BigInteger)
    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agents.id", ondelete="RESTRICT"))
    agent_version_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agent_versions.id", ondelete="RESTRICT"), nullable=True
    )
    end_user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("end_users.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("integrations.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A FLOW agent's place in its flow and its variables (survives restarts; reset with the version).
    flow_state: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # When the erasure of its end user began: from then on the thread takes no new message (the claim of a
    # message number checks it, under the thread's row lock) and no run answers in it.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    tags: Mapped[list[Tag]] = relationship(secondary=thread_tags, lazy="raise", order_by=Tag.name)
    assignees: Mapped[list[User]] = relationship(secondary=thread_assignees, lazy="raise", order_by=User.id)


# A thread's last activity, what the inbox sorts by: its last message's time, or its creation time while it has
# no message (never NULL, and never earlier than before: a message only moves its thread up).
thread_activity = type_coerce(func.coalesce(Thread.last_message_at, Thread.created_at), UTCDateTime())
# Keyset pages by (activity, number), newest first or oldest first; and the same for the threads handed to a
# human (the "needs a human" view walks only those).
Index("ix_threads_workspace_id_activity", Thread.workspace_id, thread_activity, Thread.number)
Index(
    "ix_threads_workspace_id_activity_inactive",
    Thread.workspace_id,
    thread_activity,
    Thread.number,
    postgresql_where=text("NOT active"),
    sqlite_where=text("active = 0"),
)
