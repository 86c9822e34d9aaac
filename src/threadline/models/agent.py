from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.columns import enum_column
from threadline.models.enums import AgentMode, AgentType
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class Agent(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """An agent; what it does lives in its immutable numbered versions (Feather's agentDetails)."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    type: Mapped[AgentType] = mapped_column(enum_column(AgentType), default=AgentType.TEXT)
    current_version_id: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey("agent_versions.id", use_alter=True, ondelete="SET NULL"),
        nullable=True,
    )
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)


class AgentVersion(IdMixin, WorkspaceMixin, Base):
    """One immutable configuration of an agent; a thread pins the version it started with."""

    __tablename__ = "agent_versions"
    __table_args__ = (UniqueConstraint("agent_id", "number"),)

    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[AgentMode] = mapped_column(enum_column(AgentMode))
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # On threads whose channel is SMS these take the place of max_tokens and temperature (null: those apply).
    sms_max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sms_temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    flow: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    discard_inbound: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # When a run fails for good: the message the end user gets (null: none) and whether a human takes over.
    failure_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    # Prices per million tokens, for GET /v1/usage's estimated cost: {"currency", "input", "output"}.
    pricing: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
