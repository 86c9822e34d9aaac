"""Which thread a conversation is, and for a new one, which agent answers in it and which end user it stands for
(docs/dialects/openai.md, "Agent and end user")."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.agents import service as agents
from threadline.dialects.openai import ids
from threadline.end_users import service as end_users
from threadline.end_users.schemas import EndUserCreate
from threadline.errors import InvalidRequest, NotFound
from threadline.integrations import service as integrations
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import PageRequest
from threadline.models import Agent, Thread
from threadline.threads import service as threads
from threadline.threads.schemas import ThreadCreate

AGENT_KEY = "threadline_agent_id"  # an agent's id, or its name when no other agent has it
END_USER_KEY = "threadline_end_user_id"  # an end user's id
END_USER_NAME_KEY = "threadline_end_user_name"  # the display name of the end user a new conversation makes
AGENT_MODEL = "agent:"  # model "agent:<id or name>" names the agent that answers
MAX_DISPLAY_NAME = 200


def agent_in_model(model: str | None) -> str | None:
    """The agent ``model`` names (``agent:<id or name>``); None for any other model name, which means "the
    conversation's agent" (or the workspace's default one)."""
    if model is None or not model.startswith(AGENT_MODEL):
        return None
    return model[len(AGENT_MODEL) :].strip() or None


async def conversation_thread(
    session: AsyncSession, *, workspace_id: int, conversation: str, param: str | None
) -> Thread:
    """The thread ``conversation`` (a ``conv_`` id) is; 404 for anything else, another workspace's too."""
    uid = ids.thread_of(conversation)
    if uid is None:
        raise NotFound(f"no conversation with id '{conversation[:80]}'", param=param)
    try:
        return await threads.get_thread(session, workspace_id=workspace_id, thread_id=str(uid))
    except NotFound:
        raise NotFound(f"no conversation with id '{conversation}'", param=param) from None


async def agent_named(session: AsyncSession, *, workspace_id: int, ref: str | None, param: str) -> Agent:
    """The agent ``ref`` names (its id, or a name only one agent has); without ``ref``, the workspace's default agent:
    its oldest (on a first start, the demo agent)."""
    if ref is None:
        page = await agents.list_agents(session, workspace_id=workspace_id, page=PageRequest(limit=1))
        if not page.items:
            raise InvalidRequest(
                "this workspace has no agent to answer: create one first", param=param, code="no_agent"
            )
        return page.items[0].agent
    code = "model_not_found" if param == "model" else "agent_not_found"
    if parse_uuid(ref) is not None:
        try:
            return await agents.find_agent(session, workspace_id=workspace_id, agent_id=ref)
        except NotFound:
            raise NotFound(f"no agent with id '{ref}'", param=param, code=code) from None
    named = await agents.agents_named(session, workspace_id=workspace_id, name=ref, limit=2)
    if not named:
        raise NotFound(f"no agent with id or name '{ref[:200]}'", param=param, code=code)
    if len(named) > 1:
        raise InvalidRequest(
            f"several agents are called '{ref[:200]}': name the one you mean by its id",
            param=param,
            code="agent_ambiguous",
        )
    return named[0]


async def open_conversation(
    session: AsyncSession, *, workspace_id: int, metadata: dict[str, Any], agent: Agent | None = None
) -> Thread:
    """A new thread for a new conversation: between ``agent`` (else the one metadata names, else the workspace's
    default agent) and the end user metadata names (else a new one), through the workspace's API integration, with
    ``metadata`` as the thread's metadata."""
    ref = (metadata.get(AGENT_KEY) or "").strip() or None
    param = f"metadata.{AGENT_KEY}"
    if agent is None:
        agent = await agent_named(session, workspace_id=workspace_id, ref=ref, param=param)
    elif (
        ref is not None and (await agent_named(session, workspace_id=workspace_id, ref=ref, param=param)).id != agent.id
    ):
        raise InvalidRequest(f"{param}: names another agent than model does", param=param)
    end_user_id = metadata.get(END_USER_KEY)
    if end_user_id:
        param = f"metadata.{END_USER_KEY}"
        try:
            end_user = await end_users.get_end_user(session, workspace_id=workspace_id, end_user_id=end_user_id)
        except NotFound:
            raise NotFound(f"no end user with id '{end_user_id}'", param=param) from None
        end_user_uid = str(end_user.public_id)
    else:
        name = str(metadata.get(END_USER_NAME_KEY) or "")
        if len(name) > MAX_DISPLAY_NAME:
            raise InvalidRequest(
                f"metadata.{END_USER_NAME_KEY}: at most {MAX_DISPLAY_NAME} characters",
                param=f"metadata.{END_USER_NAME_KEY}",
            )
        created = await end_users.create_end_user(
            session, workspace_id=workspace_id, data=EndUserCreate(display_name=name)
        )
        end_user_uid = str(created.public_id)
    integration = await integrations.default_api_integration(session, workspace_id=workspace_id)
    data = ThreadCreate(
        agent_id=str(agent.public_id),
        end_user_id=end_user_uid,
        integration_id=str(integration.public_id),
        metadata=metadata,
    )
    return await threads.create_thread(session, workspace_id=workspace_id, data=data)
