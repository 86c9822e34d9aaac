from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import BigIntPK, UTCDateTime
from threadline.kit.clock import utcnow
from threadline.models.mixins import WorkspaceMixin


class IdempotencyKey(WorkspaceMixin, Base):
    """A POST's ``Idempotency-Key`` with the fingerprint of its request and the response it produced.

    Written in the same transaction as what the request created, so a stored key always has its effects.
    A key is the API key's that used it first: another API key's request never finds it.
    ``resume_ref`` names what a request that committed before answering created (``status_code`` is 0
    until its response is stored), so that a retry answers from it.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    api_key_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int] = mapped_column(Integer)
    response_headers: Mapped[str] = mapped_column(String(2048), default="")
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    resume_ref: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
