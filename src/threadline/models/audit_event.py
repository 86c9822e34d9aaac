"""The audit log: one row per administrative action, written in the transaction of the change it records."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.columns import enum_column
from threadline.models.mixins import IdMixin, WorkspaceMixin


class AuditActorType(StrEnum):
    """Who acted: a request's API key, the ``threadline`` command, an operator signed in to the console (to
    come), an agent (a handoff its run made) or threadline itself (first start, an endpoint disabled)."""

    API_KEY = "api_key"
    CLI = "cli"
    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"


class AuditEvent(IdMixin, WorkspaceMixin, Base):
    """Who did what to which resource, when, from where.

    ``actor_id`` is a public id (the key's, the agent's) or, for the CLI, the operating-system user that ran
    it; ``actor_key_prefix`` is the key's display prefix, never the key. ``target_id`` is the public id of
    the resource acted on, kept as a value (not a foreign key) so the record outlives the resource.
    ``details`` is a small object of names and flags (the fields an update changed, a new key's scopes):
    never a secret, never message content. Rows are deleted after ``audit_retention_days``.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_workspace_id_target_id", "workspace_id", "target_id"),)

    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_type: Mapped[AuditActorType] = mapped_column(enum_column(AuditActorType))
    actor_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor_key_prefix: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
