from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.models.columns import enum_column
from threadline.models.enums import Direction, MessageStatus, MessageType, Role, SentBy, Source
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class Message(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """One message, holding every field any of the four vendors shows (see ARCHITECTURE.md's table).

    ``seq`` is the message's place in its thread (1, 2, 3...), assigned under the thread's row lock and
    never changed: keyset pages walk it. ``number`` is its integer id within its workspace (/v1's
    ``number``, camelAI's ``id``), unique there and never changed.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("uq_messages_thread_id_seq", "thread_id", "seq", unique=True),
        Index("uq_messages_workspace_id_number", "workspace_id", "number", unique=True),
        Index("ix_messages_thread_id_status_seq", "thread_id", "status", "seq"),
        Index("ix_messages_thread_id_direction_seq", "thread_id", "direction", "seq"),
        # Providers retry callbacks: the same provider message is stored once per integration.
        Index("uq_messages_integration_id_external_id", "integration_id", "external_id", unique=True),
        # Deleting a message sets the replies to it to NULL (ON DELETE SET NULL): found by this, not a scan.
        Index(
            "ix_messages_in_response_to_id",
            "in_response_to_id",
            postgresql_where=text("in_response_to_id IS NOT NULL"),
            sqlite_where=text("in_response_to_id IS NOT NULL"),
        ),
        # The end user's messages no one has read yet (the inbox's unread counts): only those are in it.
        Index(
            "ix_messages_thread_id_unread",
            "thread_id",
            postgresql_where=text("read_at IS NULL AND direction = 'INBOUND'"),
            sqlite_where=text("read_at IS NULL AND direction = 'INBOUND'"),
        ),
    )

    thread_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("threads.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[Role] = mapped_column(enum_column(Role))
    type: Mapped[MessageType] = mapped_column(enum_column(MessageType), default=MessageType.TEXT)
    content: Mapped[str] = mapped_column(Text, default="")
    blocks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    media_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    direction: Mapped[Direction] = mapped_column(enum_column(Direction))
    sent_by: Mapped[SentBy] = mapped_column(enum_column(SentBy))
    sent_by_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    source: Mapped[Source] = mapped_column(enum_column(Source), default=Source.API)
    status: Mapped[MessageStatus] = mapped_column(enum_column(MessageStatus))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Provider fields (Feather's twilio*): the provider's message id and account, billing, errors.
    integration_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("integrations.id", ondelete="SET NULL"), nullable=True
    )
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provider_account_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price: Mapped[str | None] = mapped_column(String(32), nullable=True)
    price_currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the agent did to produce this reply (Aitronos's tool_calls and iterations).
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    iterations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    in_response_to_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
