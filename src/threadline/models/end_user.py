from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.models.columns import enum_column
from threadline.models.enums import ChannelType
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class EndUser(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """The person an agent talks to; ``address`` is how the channel reaches them (phone, WhatsApp id)."""

    __tablename__ = "end_users"
    __table_args__ = (
        # Channels find end users by address; one end user per address and channel in a workspace.
        Index("uq_end_users_workspace_channel_address", "workspace_id", "channel", "address", unique=True),
    )

    display_name: Mapped[str] = mapped_column(String(200), default="")
    channel: Mapped[ChannelType] = mapped_column(enum_column(ChannelType), default=ChannelType.API)
    address: Mapped[str | None] = mapped_column(String(200), nullable=True)
    info: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    # When their erasure began (privacy.service): their profile is blanked then, and the row is deleted
    # when the erasure completes. Set, they are gone for every lookup, and their address is free again.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
