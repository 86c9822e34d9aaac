"""Outbound webhooks: endpoints, one delivery per (endpoint, event), and the attempts of each delivery."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import BigIntPK, JSONType, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.columns import enum_column
from threadline.models.enums import WebhookDeliveryStatus
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


def _all_events() -> list[str]:
    return ["*"]


class WebhookEndpoint(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """A URL that receives the workspace's events of ``event_types`` (patterns: ``*``, ``message.*``, a type).

    The signing secret is stored encrypted (kit.secrets) and shown only when created or rotated; after a
    rotation the previous secret keeps signing too (a second signature) until ``previous_secret_expires_at``.
    ``consecutive_failures`` / ``failing_since`` describe the current run of failed attempts, which
    disables the endpoint once it is long enough.
    """

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=_all_events)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookDelivery(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """One event for one endpoint. The event is referenced by value (``event_id`` is its public id, also the
    ``webhook-id`` header), not by foreign key: events are purged by retention, their delivery log is not.

    ``series`` counts manual replays: each starts a new series of attempts on the retry schedule, and a
    job carries the series it belongs to, so one left over from an earlier series does nothing.
    ``attempts`` counts every attempt ever made, ``series_attempts`` those of the current series.
    ``event_seq`` is filled by the first attempt (the event has no seq yet when its delivery is created).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    endpoint_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    event_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[WebhookDeliveryStatus] = mapped_column(
        enum_column(WebhookDeliveryStatus), default=WebhookDeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    series: Mapped[int] = mapped_column(Integer, default=0)
    series_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookAttempt(WorkspaceMixin, Base):
    """One HTTP request made for a delivery: what came back (or why nothing did) and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
