"""GET /v1/usage: its query and its answer."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from threadline.kit.schemas import OutputModel

MAX_DAYS = 366
DEFAULT_DAYS = 30
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_only(value: Any) -> Any:
    # Pydantic would also take a number (Unix time) or a date-time at midnight; the document says a date.
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise PydanticCustomError("iso_date", "must be a date written YYYY-MM-DD, e.g. 2026-01-31")
    return value


DateParam = Annotated[date, BeforeValidator(_iso_date_only)]
"""A query parameter that is a calendar date (UTC), written YYYY-MM-DD and nothing else."""


class GroupBy(StrEnum):
    DAY = "day"
    AGENT = "agent"


class RunCounts(OutputModel):
    completed: int
    failed: int
    cancelled: int
    total: int


class Cost(OutputModel):
    currency: str = Field(description="ISO 4217 code of the versions' pricing, e.g. USD.")
    amount: float = Field(description="Tokens times the versions' prices per million tokens, rounded to 1e-6.")


ESTIMATED_COST = (
    "Input and output tokens of each agent version times that version's `pricing` (per million tokens), summed. "
    "Versions without a price add nothing; null when none of the versions counted has a price, or when their "
    "prices are in more than one currency."
)


class UsageTotals(OutputModel):
    runs: RunCounts = Field(description="Runs that ended, by how they ended.")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    estimated_runs: int = Field(description="Runs whose provider reported no usage: threadline counted their tokens.")
    tool_calls: int
    estimated_cost: Cost | None = Field(description=ESTIMATED_COST)


class UsageRow(UsageTotals):
    """One agent's figures for one day (or for the whole range when grouped by agent)."""

    date: Annotated[date | None, Field(description="The UTC day; null when grouped by agent.")]
    agent_id: str
    agent_name: str


class UsageReport(OutputModel):
    object: Literal["usage"] = "usage"
    start: date = Field(description="The first UTC day counted.")
    end: date = Field(description="The last UTC day counted (inclusive).")
    group_by: GroupBy
    data: list[UsageRow] = Field(
        description="One row per day and agent (by day) or per agent (by agent) that ran anything; days and agents "
        "without runs are left out. By day, then agent name."
    )
    totals: UsageTotals = Field(description="Every row added up.")
