from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from threadline.db.base import Base
from threadline.db.types import BigIntPK
from threadline.models.mixins import WorkspaceMixin


class UsageDay(WorkspaceMixin, Base):
    """What one agent version's runs that ended on one UTC day cost: counted when each run ends, in the
    transaction that ends it, so the figures survive the runs themselves (an erasure deletes an end user's
    runs; their tokens were still spent)."""

    __tablename__ = "usage_days"
    __table_args__ = (UniqueConstraint("workspace_id", "day", "agent_version_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    agent_version_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agent_versions.id", ondelete="CASCADE"))
    runs_completed: Mapped[int] = mapped_column(Integer, default=0)
    runs_failed: Mapped[int] = mapped_column(Integer, default=0)
    runs_cancelled: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Runs whose provider reported no usage, so that threadline counted their tokens itself.
    estimated_runs: Mapped[int] = mapped_column(Integer, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
