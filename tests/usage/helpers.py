"""Agents with versions made through the API, and runs counted as the runtime counts them (count_run)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.kit.ids import parse_uuid
from threadline.models import Agent, AgentVersion
from threadline.usage.repository import UsageRepository

PROMPT: dict[str, Any] = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "system_prompt": "Be brief."}


@dataclass
class MadeAgent:
    id: str  # public
    name: str
    workspace_key: int
    key: int
    version_keys: list[int]  # in the order of the pricings given


async def agent_with_versions(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], name: str, *pricings: dict[str, Any] | None
) -> MadeAgent:
    """An agent with one PROMPT version per pricing (None: a version without a price)."""
    first, *rest = pricings or (None,)
    r = await api.post("/v1/agents", json={"name": name, "version": {**PROMPT, "pricing": first}})
    assert r.status_code == 201, r.text
    agent_id = r.json()["id"]
    for pricing in rest:
        v = await api.post(f"/v1/agents/{agent_id}/versions", json={**PROMPT, "pricing": pricing})
        assert v.status_code == 201, v.text
    async with sessionmaker() as session:
        agent = (await session.execute(select(Agent).where(Agent.public_id == parse_uuid(agent_id)))).scalar_one()
        versions = (
            await session.execute(
                select(AgentVersion.id).where(AgentVersion.agent_id == agent.id).order_by(AgentVersion.number)
            )
        ).scalars()
        return MadeAgent(agent_id, name, agent.workspace_id, agent.id, list(versions))


async def count(
    sessionmaker: async_sessionmaker[AsyncSession],
    agent: MadeAgent,
    *,
    day: date,
    version: int = 0,
    outcome: str = "completed",
    input_tokens: int = 0,
    output_tokens: int = 0,
    estimated: bool = False,
    tool_calls: int = 0,
) -> None:
    """One run of ``agent``'s version number ``version + 1`` ended on ``day``, in a transaction of its own."""
    async with sessionmaker() as session, session.begin():
        await UsageRepository(session, agent.workspace_key).count_run(
            day=day,
            agent_id=agent.key,
            agent_version_id=agent.version_keys[version],
            outcome=outcome,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            estimated=estimated,
            tool_calls=tool_calls,
        )
