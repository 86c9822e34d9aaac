"""All SQL of usage: the per-day counters (``usage_days``) written as runs end, and the reads of GET /v1/usage."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row

from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, UsageDay

OUTCOME_COLUMNS = {"completed": "runs_completed", "failed": "runs_failed", "cancelled": "runs_cancelled"}
# The counters a run adds to: every column of the row but its key.
COUNTERS = (
    "runs_completed",
    "runs_failed",
    "runs_cancelled",
    "input_tokens",
    "output_tokens",
    "estimated_runs",
    "tool_calls",
)


class UsageRepository(WorkspaceRepository):
    async def count_run(
        self,
        *,
        day: date,
        agent_id: int,
        agent_version_id: int,
        outcome: str,
        input_tokens: int,
        output_tokens: int,
        estimated: bool,
        tool_calls: int,
    ) -> None:
        """Add one ended run to its version's row of ``day`` (UTC), creating the row if it is the day's first.

        One statement, ``INSERT ... ON CONFLICT (workspace_id, day, agent_version_id) DO UPDATE SET c = c +
        excluded.c``: runs that end at once in other transactions each add theirs, none is lost (the second
        waits for the first's row lock, then adds to what it committed). ``outcome``: completed, failed or
        cancelled (anything else is a ValueError: a run counted nowhere would skew every figure)."""
        column = OUTCOME_COLUMNS.get(outcome)
        if column is None:
            raise ValueError(f"a run ends completed, failed or cancelled, not {outcome!r}")
        values: dict[str, Any] = {
            "workspace_id": self.workspace_id,
            "day": day,
            "agent_id": agent_id,
            "agent_version_id": agent_version_id,
            **dict.fromkeys(OUTCOME_COLUMNS.values(), 0),
            column: 1,
            "input_tokens": max(0, input_tokens),
            "output_tokens": max(0, output_tokens),
            "estimated_runs": int(estimated),
            "tool_calls": max(0, tool_calls),
        }
        insert = sqlite_insert if self.session.get_bind().dialect.name == "sqlite" else pg_insert
        stmt = insert(UsageDay).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[UsageDay.workspace_id, UsageDay.day, UsageDay.agent_version_id],
            set_={name: getattr(UsageDay, name) + getattr(stmt.excluded, name) for name in COUNTERS},
        )
        await self.session.execute(stmt)

    async def agent_key(self, agent_id: str) -> int:
        """The row id of this workspace's agent ``agent_id`` (a public id), else NotFound naming ``agent_id``."""
        agent = await self.get(Agent, agent_id, label="agent", param="agent_id")
        return agent.id

    async def version_sums(
        self, *, start: date, end: date, agent_key: int | None = None, by_day: bool = True
    ) -> list[Row[Any]]:
        """The counters summed per agent version (and per day when ``by_day``) from ``start`` to ``end``
        (inclusive), each with its agent's public id and name and its version's pricing; by day, then agent
        name. Columns: ``day`` (None unless ``by_day``), ``agent_public_id``, ``agent_name``, ``pricing`` and
        one per counter."""
        keys: list[Any] = [UsageDay.agent_id, UsageDay.agent_version_id]
        if by_day:
            keys.append(UsageDay.day)
        sums = select(*keys, *(func.sum(getattr(UsageDay, name)).label(name) for name in COUNTERS)).where(
            UsageDay.workspace_id == self.workspace_id, UsageDay.day >= start, UsageDay.day <= end
        )
        if agent_key is not None:
            sums = sums.where(UsageDay.agent_id == agent_key)
        per_version = sums.group_by(*keys).subquery()
        day = per_version.c.day if by_day else null()
        stmt = (
            select(
                day.label("day"),
                Agent.public_id.label("agent_public_id"),
                Agent.name.label("agent_name"),
                AgentVersion.pricing,
                *(per_version.c[name] for name in COUNTERS),
            )
            .select_from(per_version)
            .join(Agent, Agent.id == per_version.c.agent_id)
            .join(AgentVersion, AgentVersion.id == per_version.c.agent_version_id)
            .where(Agent.workspace_id == self.workspace_id)
        )
        order: list[Any] = [per_version.c.day] if by_day else []
        stmt = stmt.order_by(*order, Agent.name, Agent.id, AgentVersion.id)
        return list(await self.session.execute(stmt))
