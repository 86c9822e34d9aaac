"""Usage: runs and tokens per agent and per UTC day, with an estimated cost where versions name a price."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import ValidationFailed
from threadline.kit.clock import utcnow
from threadline.usage.repository import COUNTERS, UsageRepository
from threadline.usage.schemas import (
    DEFAULT_DAYS,
    MAX_DAYS,
    Cost,
    GroupBy,
    RunCounts,
    UsageReport,
    UsageRow,
    UsageTotals,
)


def resolve_range(start: date | None, end: date | None, *, today: date) -> tuple[date, date]:
    """(start, end), inclusive: ``end`` defaults to today (UTC), ``start`` to 29 days before ``end`` (30 days in
    all). A 422 naming the parameter when ``start`` is after ``end`` or the range is longer than 366 days."""
    end = end or today
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1) if end.toordinal() > DEFAULT_DAYS else date.min
    if start > end:
        raise ValidationFailed(f"start: {start} is after end ({end})", param="start")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationFailed(
            f"end: the range from {start} to {end} is longer than {MAX_DAYS} days; ask for it in parts", param="end"
        )
    return start, end


@dataclass
class _Tally:
    """Counters added up over rows of one version each, and the cost of those with a price, per currency."""

    counts: dict[str, int] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)

    def add(self, row: Any) -> None:
        for name in COUNTERS:
            self.counts[name] = self.counts.get(name, 0) + int(getattr(row, name) or 0)
        price = _price(row.pricing)
        if price is not None:
            currency, per_input, per_output = price
            cost = (int(row.input_tokens or 0) * per_input + int(row.output_tokens or 0) * per_output) / 1_000_000
            self.costs[currency] = self.costs.get(currency, 0.0) + cost

    def merge(self, other: _Tally) -> None:
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        for currency, amount in other.costs.items():
            self.costs[currency] = self.costs.get(currency, 0.0) + amount

    def figures(self) -> dict[str, Any]:
        c = self.counts
        completed, failed, cancelled = c.get("runs_completed", 0), c.get("runs_failed", 0), c.get("runs_cancelled", 0)
        input_tokens, output_tokens = c.get("input_tokens", 0), c.get("output_tokens", 0)
        cost = None
        if len(self.costs) == 1:  # none: nothing priced; several currencies: no one sum to give
            ((currency, amount),) = self.costs.items()
            cost = Cost(currency=currency, amount=round(amount, 6))
        return {
            "runs": RunCounts(
                completed=completed, failed=failed, cancelled=cancelled, total=completed + failed + cancelled
            ),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "estimated_runs": c.get("estimated_runs", 0),
            "tool_calls": c.get("tool_calls", 0),
            "estimated_cost": cost,
        }


def _price(pricing: Any) -> tuple[str, float, float] | None:
    """(currency, per million input tokens, per million output tokens) of a version's stored pricing, or None
    (no pricing, or one that is not what the API stores: such a version is unpriced, never a 500)."""
    if not isinstance(pricing, dict):
        return None
    currency = pricing.get("currency") or "USD"
    prices = [pricing.get("input_per_million_tokens"), pricing.get("output_per_million_tokens")]
    if not isinstance(currency, str):
        return None
    numbers = [float(p) for p in prices if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p)]
    if len(numbers) != 2:
        return None
    return currency, numbers[0], numbers[1]


async def usage_report(
    session: AsyncSession,
    *,
    workspace_id: int,
    start: date | None = None,
    end: date | None = None,
    agent_id: str | None = None,
    group_by: GroupBy = GroupBy.DAY,
) -> UsageReport:
    """Runs and tokens of the workspace's agents from ``start`` to ``end`` (UTC days, inclusive), per day and
    agent or per agent; ``agent_id`` (a public id) keeps one agent (404 when it is not this workspace's)."""
    start, end = resolve_range(start, end, today=utcnow().date())
    repo = UsageRepository(session, workspace_id)
    agent_key = await repo.agent_key(agent_id) if agent_id is not None else None
    rows = await repo.version_sums(start=start, end=end, agent_key=agent_key, by_day=group_by is GroupBy.DAY)
    groups: dict[tuple[date | None, str], tuple[str, _Tally]] = {}  # in the rows' order: day, agent name
    for row in rows:
        key = (row.day, str(row.agent_public_id))
        _, tally = groups.setdefault(key, (row.agent_name, _Tally()))
        tally.add(row)
    totals = _Tally()
    data = []
    for (day, agent), (name, tally) in groups.items():
        totals.merge(tally)
        data.append(UsageRow(date=day, agent_id=agent, agent_name=name, **tally.figures()))
    return UsageReport(start=start, end=end, group_by=group_by, data=data, totals=UsageTotals(**totals.figures()))
