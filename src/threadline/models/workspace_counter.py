from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import BigIntPK


class WorkspaceCounter(Base):
    """The highest ``number`` handed out so far of a workspace's threads and of its messages (to a
    transaction, or in a block to a server process): the next ones are greater (workspaces.numbers).

    A table of its own, not columns of ``workspaces``: that row is locked until commit by every transaction
    that records events, and taking numbers must never wait for one."""

    __tablename__ = "workspace_counters"

    workspace_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    last_thread_number: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_message_number: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
