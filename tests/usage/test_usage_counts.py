"""UsageRepository.count_run: one upsert per ended run into usage_days, on SQLite and PostgreSQL alike,
exact under concurrent runs."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.usage.helpers import MadeAgent, agent_with_versions, count
from threadline.models import UsageDay
from threadline.usage.repository import UsageRepository

Maker = async_sessionmaker[AsyncSession]
DAY = date(2026, 3, 14)


async def _rows(sessionmaker: Maker, agent: MadeAgent) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(UsageDay).where(UsageDay.agent_id == agent.key).order_by(UsageDay.day, UsageDay.agent_version_id)
            )
        ).scalars()
        return [
            {
                "day": r.day,
                "version": agent.version_keys.index(r.agent_version_id),
                "completed": r.runs_completed,
                "failed": r.runs_failed,
                "cancelled": r.runs_cancelled,
                "input": r.input_tokens,
                "output": r.output_tokens,
                "estimated": r.estimated_runs,
                "tools": r.tool_calls,
            }
            for r in rows
        ]


async def test_runs_add_up_in_one_row_per_version_and_day(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    agent = await agent_with_versions(api, sessionmaker, "counted", None, None)
    await count(sessionmaker, agent, day=DAY, input_tokens=100, output_tokens=20, tool_calls=2)
    await count(sessionmaker, agent, day=DAY, outcome="failed", input_tokens=40, estimated=True)
    await count(sessionmaker, agent, day=DAY, outcome="cancelled", input_tokens=1, output_tokens=1)
    await count(sessionmaker, agent, day=DAY, version=1, input_tokens=7, output_tokens=3)
    await count(sessionmaker, agent, day=date(2026, 3, 15), input_tokens=5, output_tokens=5, estimated=True)

    assert await _rows(sessionmaker, agent) == [
        {"day": DAY, "version": 0, "completed": 1, "failed": 1, "cancelled": 1, "input": 141, "output": 21,
         "estimated": 1, "tools": 2},
        {"day": DAY, "version": 1, "completed": 1, "failed": 0, "cancelled": 0, "input": 7, "output": 3,
         "estimated": 0, "tools": 0},
        {"day": date(2026, 3, 15), "version": 0, "completed": 1, "failed": 0, "cancelled": 0, "input": 5,
         "output": 5, "estimated": 1, "tools": 0},
    ]  # fmt: skip


async def test_an_outcome_that_is_not_an_end_is_refused_and_counts_nothing(
    api: httpx.AsyncClient, sessionmaker: Maker
) -> None:
    agent = await agent_with_versions(api, sessionmaker, "refused")
    for outcome in ("running", "queued", "succeeded", ""):
        with pytest.raises(ValueError, match="completed, failed or cancelled"):
            await count(sessionmaker, agent, day=DAY, outcome=outcome, input_tokens=1)
    assert await _rows(sessionmaker, agent) == []


async def test_a_rolled_back_transaction_counts_nothing(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    agent = await agent_with_versions(api, sessionmaker, "rolled back")
    async with sessionmaker() as session:
        async with session.begin():
            await UsageRepository(session, agent.workspace_key).count_run(
                day=DAY, agent_id=agent.key, agent_version_id=agent.version_keys[0], outcome="completed",
                input_tokens=10, output_tokens=10, estimated=False, tool_calls=0,
            )  # fmt: skip
            await session.rollback()
    assert await _rows(sessionmaker, agent) == []


async def test_concurrent_runs_of_one_version_and_day_give_exact_totals(
    api: httpx.AsyncClient, sessionmaker: Maker, is_postgres: bool
) -> None:
    """Each run ends in its own transaction, all at once: on PostgreSQL the first creates the row and the
    others wait for its lock, then add to it (no lost update, no unique violation); SQLite's writers queue."""
    agent = await agent_with_versions(api, sessionmaker, "busy")
    n = 40 if is_postgres else 20
    gate = asyncio.Event()

    async def one(i: int) -> None:
        await gate.wait()
        await count(
            sessionmaker,
            agent,
            day=DAY,
            outcome=("completed", "failed", "cancelled")[i % 3],
            input_tokens=i,
            output_tokens=2 * i,
            estimated=i % 2 == 0,
            tool_calls=1,
        )

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(*tasks)
    (row,) = await _rows(sessionmaker, agent)
    outcomes = [("completed", "failed", "cancelled")[i % 3] for i in range(n)]
    assert row["completed"] == outcomes.count("completed")
    assert row["failed"] == outcomes.count("failed") and row["cancelled"] == outcomes.count("cancelled")
    assert row["input"] == sum(range(n)) and row["output"] == 2 * sum(range(n))
    assert row["estimated"] == len(range(0, n, 2)) and row["tools"] == n


@pytest.mark.postgres_only
async def test_concurrent_runs_commit_while_others_hold_the_row(api: httpx.AsyncClient, sessionmaker: Maker) -> None:
    """A transaction that counted a run and has not committed yet holds the row; another run's count waits for
    it and then adds to the committed figure (never to the one it read before)."""
    agent = await agent_with_versions(api, sessionmaker, "held")
    await count(sessionmaker, agent, day=DAY, input_tokens=1)
    async with sessionmaker() as holder:
        await holder.begin()
        await UsageRepository(holder, agent.workspace_key).count_run(
            day=DAY, agent_id=agent.key, agent_version_id=agent.version_keys[0], outcome="completed",
            input_tokens=10, output_tokens=0, estimated=False, tool_calls=0,
        )  # fmt: skip
        waiting = asyncio.create_task(count(sessionmaker, agent, day=DAY, input_tokens=100))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the holder's row lock
        await holder.commit()
        await asyncio.wait_for(waiting, 10)
    (row,) = await _rows(sessionmaker, agent)
    assert row["completed"] == 3 and row["input"] == 111
