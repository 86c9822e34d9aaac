from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.mixins import IdMixin, WorkspaceMixin


class ApiKey(IdMixin, WorkspaceMixin, Base):
    """A workspace's API key: only a SHA-256 of the secret is kept; the prefix lets people tell keys apart."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
