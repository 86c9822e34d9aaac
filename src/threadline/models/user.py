from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import JSONType
from threadline.models.columns import enum_column
from threadline.models.mixins import IdMixin, TimestampMixin, WorkspaceMixin


class UserRole(StrEnum):
    """What an operator may do in the console: an ``admin`` also manages keys, integrations and users."""

    ADMIN = "admin"
    OPERATOR = "operator"


class User(IdMixin, WorkspaceMixin, TimestampMixin, Base):
    """A human operator (Altur's ``assigned_to`` and ``sent_by_user``)."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    role: Mapped[UserRole] = mapped_column(enum_column(UserRole), default=UserRole.OPERATOR, server_default="operator")
    # An argon2id hash (users.passwords), never the password; None: the user cannot sign in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)


# Emails are unique per workspace regardless of case (the service checks too; this closes the race).
Index("uq_users_workspace_id_lower_email", User.workspace_id, func.lower(User.email), unique=True)
