"""The operator console's sign-in state: sessions and one-time sign-in links (only hashes of their tokens)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import BigIntPK, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.mixins import WorkspaceMixin


class ConsoleSession(WorkspaceMixin, Base):
    """A signed-in operator's browser session. The cookie holds a random token; only its SHA-256 is kept, so a
    copy of the table signs nobody in. Revoking a session deletes its row (sign-out, a password change);
    deleting the user deletes their sessions with them."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SignInLink(WorkspaceMixin, Base):
    """A one-time sign-in link (printed by the CLI and the first start): used once, before it expires."""

    __tablename__ = "sign_in_links"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
