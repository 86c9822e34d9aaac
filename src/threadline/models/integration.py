from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType
from threadline.models.columns import enum_column
from threadline.models.enums import ChannelType
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class Integration(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """A channel an agent is reachable on (Altur's ``integration``): the plain API, Twilio SMS or WhatsApp.

    ``settings`` holds what may be shown (numbers, ids); ``secrets_ciphertext`` holds tokens, encrypted,
    and is never returned; ``secret_names`` lists the names (never the values) of what it holds, so
    reads need no decryption.
    """

    __tablename__ = "integrations"

    type: Mapped[ChannelType] = mapped_column(enum_column(ChannelType))
    name: Mapped[str] = mapped_column(String(200), default="")
    agent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="RESTRICT"), nullable=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    secrets_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    secret_names: Mapped[list[str]] = mapped_column(JSONType, default=list)
