"""The agents page (read-only): each agent with its versions (mode, provider, model, the prompt or the flow as
text, tools) and how many threads run each, linking to the inbox filtered by the agent. Every version has an
anchor, ``/console/agents#version-<version id>``, which the thread view links to.

Agents come 50 to a page (``after=<agent id>`` for the next), each with its 50 newest versions; ``agent=<id>``
shows that agent alone with up to 200 (a link to one version that may be old: ``?agent=A#version-V``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from threadline.agents import service as agents
from threadline.console.deps import OperatorDep
from threadline.console.web import PREFIX, page
from threadline.errors import NotFound, ValidationFailed
from threadline.kit.pagination import Order, PageRequest
from threadline.models import Agent, AgentVersion
from threadline.web.deps import SessionDep

router = APIRouter()

AGENTS_PAGE = 50
VERSIONS_SHOWN = 50
VERSIONS_OF_ONE = 200


@dataclass(frozen=True, slots=True)
class VersionCard:
    version: AgentVersion
    id: str
    current: bool
    threads: int
    instructions: str | None  # the system prompt (PROMPT) or the flow as indented JSON (FLOW)
    tools: list[str]
    settings: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class AgentCard:
    agent: Agent
    id: str
    versions: list[VersionCard]
    more_versions: bool
    threads: int
    unversioned_threads: int  # threads that run no version (the agent had none)

    @property
    def inbox_url(self) -> str:
        return f"{PREFIX}/inbox?agent={self.id}"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        for key in ("name", "type"):
            if isinstance(tool.get(key), str):
                return str(tool[key])
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return "tool"


def _version_card(version: AgentVersion, *, current: bool, threads: int) -> VersionCard:
    if version.mode.value == "FLOW":
        instructions = _pretty(version.flow) if version.flow is not None else None
    else:
        instructions = version.system_prompt
    settings = [
        (label, str(value))
        for label, value in (
            ("Temperature", version.temperature),
            ("Max tokens", version.max_tokens),
            ("SMS max tokens", version.sms_max_tokens),
            ("SMS temperature", version.sms_temperature),
        )
        if value is not None
    ]
    if version.discard_inbound:
        settings.append(("Inbound", "discarded"))
    if version.failure_handoff:
        settings.append(("On failure", "hands over to a human"))
    return VersionCard(
        version=version,
        id=str(version.public_id),
        current=current,
        threads=threads,
        instructions=instructions,
        tools=[_tool_name(t) for t in version.tools or []],
        settings=settings,
    )


@router.get("/agents")
async def agents_page(
    session: SessionDep,
    operator: OperatorDep,
    after: Annotated[str, Query(max_length=64)] = "",
    agent: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    ws = operator.workspace_id
    has_more = False
    if agent:
        # Another workspace's agent (or no agent) is a 404, as in the API.
        listed = [await agents.find_agent(session, workspace_id=ws, agent_id=agent)]
    else:
        cursor: Any = None
        if after:
            try:
                cursor = (await agents.find_agent(session, workspace_id=ws, agent_id=after)).id
            except NotFound:
                raise ValidationFailed("after: not an agent of this workspace", param="after") from None
        found = await agents.list_agents(
            session, workspace_id=ws, page=PageRequest(limit=AGENTS_PAGE, order=Order.ASC, after=cursor)
        )
        listed, has_more = [a.agent for a in found.items], found.has_more
    counts = await agents.thread_counts(session, workspace_id=ws, agents=listed)
    shown = VERSIONS_OF_ONE if agent else VERSIONS_SHOWN
    cards = []
    for item in listed:
        versions = await agents.list_versions(
            session, workspace_id=ws, agent=item, page=PageRequest(limit=shown, order=Order.DESC)
        )
        per_version = counts.get(item.id, {})
        cards.append(
            AgentCard(
                agent=item,
                id=str(item.public_id),
                versions=[
                    _version_card(v, current=v.id == item.current_version_id, threads=per_version.get(v.id, 0))
                    for v in versions.items
                ],
                more_versions=versions.has_more,
                threads=sum(per_version.values()),
                unversioned_threads=per_version.get(None, 0),
            )
        )
    next_url = f"{PREFIX}/agents?after={cards[-1].id}" if has_more and cards else None
    return page(
        "agents.html",
        operator=operator,
        section="agents",
        cards=cards,
        next_url=next_url,
        narrowed=bool(agent or after),
    )
