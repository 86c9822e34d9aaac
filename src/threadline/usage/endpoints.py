from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from threadline.kit.schemas import IdRef
from threadline.usage import service
from threadline.usage.schemas import MAX_DAYS, DateParam, GroupBy, UsageReport
from threadline.web.deps import ReadAuth, SessionDep

router = APIRouter(tags=["usage"])


@router.get(
    "/usage",
    response_model=UsageReport,
    summary="Runs and tokens per agent and day",
    description="Runs that ended (completed, failed, cancelled), input and output tokens, tool calls and an "
    "estimated cost (where agent versions have a `pricing`), per UTC day and agent, or per agent over the range. "
    f"The range is inclusive, {MAX_DAYS} days at most; by default the last 30 days up to today (UTC). A run counts "
    "on the day it ended; the figures outlast the runs (an erasure keeps them).",
)
async def get_usage(
    session: SessionDep,
    auth: ReadAuth,
    start: Annotated[
        DateParam | None, Query(description="First UTC day (YYYY-MM-DD); default: 29 days before end.")
    ] = None,
    end: Annotated[DateParam | None, Query(description="Last UTC day, inclusive (YYYY-MM-DD); default: today.")] = None,
    agent_id: Annotated[IdRef | None, Query(description="Only this agent.")] = None,
    group_by: Annotated[
        GroupBy, Query(description="`day`: a row per day and agent; `agent`: a row per agent over the range.")
    ] = GroupBy.DAY,
) -> UsageReport:
    return await service.usage_report(
        session, workspace_id=auth.workspace_id, start=start, end=end, agent_id=agent_id, group_by=group_by
    )
