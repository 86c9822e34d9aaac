"""First start: on an empty database, create workspace ``default``, an admin key, an admin operator and a
demo agent.

The admin key's secret and the operator's one-time sign-in link are printed once, to stdout, and never
logged: logs are shipped and kept, stdout of a first start is read by the person who started it.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.api_keys.service import create_key
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.console import service as console
from threadline.db.engine import WRITE_OPTION
from threadline.flows.send import append_message
from threadline.messages.service import NewMessage
from threadline.models import Agent, AgentVersion, EndUser, Thread, UserRole
from threadline.models.enums import AgentMode, AgentType, ChannelType, Role, Scope
from threadline.workspaces import numbers
from threadline.workspaces.repository import advisory_lock
from threadline.workspaces.service import any_workspace, create_workspace

log = structlog.get_logger(__name__)

DEFAULT_WORKSPACE = "default"
BOOTSTRAP_KEY_NAME = "bootstrap admin"
BOOTSTRAP_OPERATOR_EMAIL = "admin@localhost"
# Any constant bigint works; this one spells "threadln" in ASCII so it is recognisable in pg_locks.
ADVISORY_LOCK_ID = 0x7468726561646C6E

# The demo agent answers at once, with no key and no network: a greeting with buttons, a captured name,
# a branch, a handoff to a human and an end. docs/flows.md walks through it.
DEMO_FLOW: dict[str, Any] = {
    "version": 1,
    "description": "The demo agent: a greeting with buttons, a captured name, a branch, a handoff to a human.",
    "start": "greet",
    "nodes": {
        "greet": {
            "type": "ask",
            "text": "Hi {{name | there}}! I'm the threadline demo agent, a scripted flow: no AI key, no network. "
            "What can I do for you?",
            "buttons": [
                {"title": "Talk to sales", "payload": "sales"},
                {"title": "Get support", "payload": "support"},
            ],
            "var": "topic",
            "validate": {
                "buttons": True,
                "message": "Please pick one: Talk to sales, or Get support.",
                "max_attempts": 3,
                "on_invalid": "human",
            },
            "next": "ask_name",
        },
        "ask_name": {
            "type": "ask",
            "text": "Happy to help. What's your name?",
            "var": "name",
            "validate": {"regex": r"\S.{0,79}", "message": "Sorry, I missed that. What's your name?"},
            "next": "route",
        },
        "route": {
            "type": "branch",
            "cases": [{"var": "topic", "equals": "sales", "next": "sales"}],
            "default": "support",
        },
        "sales": {
            "type": "handoff",
            "message": "Thanks, {{name}}! I'm passing you to our sales team: a person will answer here shortly.",
            "reason": "{{name}} wants to talk to sales",
            "tags": ["sales"],
        },
        "support": {
            "type": "ask",
            "text": "Thanks, {{name}}. In a few words, what do you need help with?",
            "var": "issue",
            "next": "triage",
        },
        "triage": {
            "type": "branch",
            "cases": [
                {"keyword": ["human", "person", "operator", "someone"], "next": "human"},
                {"keyword": ["password", "log in", "login", "sign in"], "next": "password"},
            ],
            "default": "noted",
        },
        "password": {
            "type": "send",
            "text": "To reset your password, open Settings > Security and choose Reset password: "
            "the link comes by email.",
            "next": "done",
        },
        "noted": {"type": "send", "text": 'Noted: "{{issue}}". Our support team will follow up.', "next": "done"},
        "done": {"type": "end", "message": "Anything else, {{name}}? Just write again and I'll start over."},
        "human": {
            "type": "handoff",
            "message": "Let me get you a person: someone from our team will answer here shortly.",
            "reason": "asked for a human",
            "tags": ["support"],
        },
    },
}


@dataclass(frozen=True)
class Bootstrapped:
    workspace_name: str
    workspace_id: str
    key_id: str
    secret: str
    agent_id: str
    end_user_id: str
    thread_id: str
    prompt_agent_id: str = ""
    prompt_agent_note: str = ""
    prompt_thread_id: str = ""  # the demo user's thread with the PROMPT demo agent, when it has a model
    operator_email: str = ""  # the admin operator of the console
    sign_in_path: str = ""  # their one-time sign-in link (path and token), when the console is on


async def bootstrap_if_empty(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, out: TextIO | None = None
) -> None:
    """Seed an empty database (one transaction) and print the admin key once; do nothing otherwise.

    Safe when several processes start at once: on PostgreSQL they queue on a transaction-scoped
    advisory lock, on SQLite on the write lock (BEGIN IMMEDIATE); whoever comes second finds a
    workspace and leaves.
    """
    created = await _seed_if_empty(sessionmaker, settings)
    if created is None:
        return
    log.info(
        "bootstrap.created",
        workspace=created.workspace_name,
        workspace_id=created.workspace_id,
        api_key_id=created.key_id,
        agent_id=created.agent_id,
    )
    stream = out if out is not None else sys.stdout
    stream.write(banner(created, settings))
    stream.flush()


async def _seed_if_empty(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Bootstrapped | None:
    async with sessionmaker() as session:
        # A read first, so that every start after the first takes no lock at all.
        if await any_workspace(session):
            return None
    async with sessionmaker() as session, session.begin():
        # On SQLite the write option makes this BEGIN IMMEDIATE, whichever sessionmaker we were given.
        conn = await session.connection(execution_options={WRITE_OPTION: True})
        if conn.dialect.name == "postgresql":
            await advisory_lock(session, ADVISORY_LOCK_ID)
        if await any_workspace(session):
            return None
        return await _seed(session, settings)


async def _seed(session: AsyncSession, settings: Settings) -> Bootstrapped:
    workspace = await create_workspace(session, name=DEFAULT_WORKSPACE)
    key, secret = await create_key(
        session,
        workspace_id=workspace.id,
        scopes=[Scope.READ, Scope.WRITE, Scope.ADMIN],
        name=BOOTSTRAP_KEY_NAME,
        actor=Actor.system(),
    )
    agent = Agent(
        workspace_id=workspace.id,
        name="Demo agent",
        description="A scripted flow: a greeting with buttons, a captured name, a branch, a handoff to a human.",
        type=AgentType.TEXT,
    )
    session.add(agent)
    await session.flush()
    version = AgentVersion(
        workspace_id=workspace.id,
        agent_id=agent.id,
        number=1,
        name="v1",
        mode=AgentMode.FLOW,
        provider="flow",
        flow=DEMO_FLOW,
    )
    session.add(version)
    await session.flush()
    agent.current_version_id = version.id
    end_user = EndUser(workspace_id=workspace.id, display_name="Demo user", channel=ChannelType.API)
    session.add(end_user)
    await session.flush()
    thread = Thread(
        workspace_id=workspace.id,
        number=await numbers.take(session, workspace_id=workspace.id, of=Thread),
        agent_id=agent.id,
        agent_version_id=version.id,
        end_user_id=end_user.id,
    )
    session.add(thread)
    await session.flush()
    await append_message(
        session,
        workspace_id=workspace.id,
        thread_id=str(thread.public_id),
        new=NewMessage(role=Role.USER, content="Hello! This is the demo user's first message."),
    )
    operator = await console.create_operator(
        session, workspace_id=workspace.id, email=BOOTSTRAP_OPERATOR_EMAIL, role=UserRole.ADMIN, first_name="Admin"
    )
    sign_in_path = ""
    if settings.console.enabled:
        token = await console.issue_link(session, user=operator, ttl=timedelta(hours=settings.console.link_ttl_hours))
        sign_in_path = console.link_path(token)
    prompt_agent, note = await _prompt_demo_agent(session, workspace.id, settings)
    prompt_thread = None
    if prompt_agent.current_version_id is not None:
        # No first message here: the model answers when someone writes, not at every first start.
        prompt_thread = Thread(
            workspace_id=workspace.id,
            number=await numbers.take(session, workspace_id=workspace.id, of=Thread),
            agent_id=prompt_agent.id,
            agent_version_id=prompt_agent.current_version_id,
            end_user_id=end_user.id,
        )
        session.add(prompt_thread)
        await session.flush()
    return Bootstrapped(
        prompt_agent_id=str(prompt_agent.public_id),
        prompt_agent_note=note,
        prompt_thread_id=str(prompt_thread.public_id) if prompt_thread is not None else "",
        workspace_name=workspace.name,
        workspace_id=str(workspace.public_id),
        key_id=str(key.public_id),
        secret=secret,
        agent_id=str(agent.public_id),
        end_user_id=str(end_user.public_id),
        thread_id=str(thread.public_id),
        operator_email=operator.email,
        sign_in_path=sign_in_path,
    )


PROMPT_DEMO_SYSTEM_PROMPT = (
    "You are the threadline demo assistant. Answer briefly and kindly. If the person asks for a human, "
    "call the handoff_to_human tool."
)


def prompt_demo_provider(settings: Settings) -> tuple[str, str] | None:
    """(provider, model) for the PROMPT demo agent: an OpenAI-compatible server when one is configured (a key,
    or a base URL other than OpenAI's: Ollama and vLLM need no key), else the local model when its extra is
    installed, else None."""
    configured_url = settings.providers.openai_base_url.rstrip("/") != "https://api.openai.com/v1"
    if settings.providers.openai_api_key is not None or configured_url:
        return "openai", settings.providers.openai_model
    if importlib.util.find_spec("llama_cpp") is not None:
        return "local", "gemma-3-270m"
    return None


async def _prompt_demo_agent(session: AsyncSession, workspace_id: int, settings: Settings) -> tuple[Agent, str]:
    """The PROMPT demo agent: answering through the configured provider, or without a version (it does not
    answer) and a description that says how to turn it on."""
    choice = prompt_demo_provider(settings)
    how = (
        "To turn it on, configure a model (THREADLINE_OPENAI_BASE_URL and OPENAI_API_KEY for OpenAI, Ollama, "
        "vLLM, LM Studio or llama.cpp; or install threadline[local]) and add a version: "
        "POST /v1/agents/{id}/versions with mode PROMPT, provider and model."
    )
    agent = Agent(
        workspace_id=workspace_id,
        name="Demo assistant",
        description=(
            f"A PROMPT agent answering with {choice[0]} model {choice[1]}." if choice else f"Inactive: no model. {how}"
        ),
        type=AgentType.TEXT,
    )
    session.add(agent)
    await session.flush()
    if choice is None:
        return agent, f"A PROMPT demo agent was created inactive (no model configured). {how}"
    provider, model = choice
    tools = [{"type": "handoff_to_human", "name": "handoff_to_human"}]
    settings_json: dict[str, Any] = {}
    if provider == "local":
        tools, settings_json = [], {}  # the local model cannot choose tools by itself
    version = AgentVersion(
        workspace_id=workspace_id,
        agent_id=agent.id,
        number=1,
        name="v1",
        mode=AgentMode.PROMPT,
        provider=provider,
        model=model,
        system_prompt=PROMPT_DEMO_SYSTEM_PROMPT,
        temperature=0.3,
        max_tokens=300,
        tools=tools,
        settings=settings_json,
    )
    session.add(version)
    await session.flush()
    agent.current_version_id = version.id
    label = "the local model (weak, for trying offline)" if provider == "local" else f"{provider} model {model}"
    return agent, f"A PROMPT demo agent 'Demo assistant' answers with {label}."


def base_url(settings: Settings) -> str:
    """The URL a person on this machine can reach the server at (a wildcard bind becomes loopback)."""
    host = settings.server.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def site_url(settings: Settings) -> str:
    """The URL people open: the public base URL when one is set, else this machine's (``base_url``)."""
    return settings.server.public_base_url.rstrip("/") if settings.server.public_base_url else base_url(settings)


def _console_lines(created: Bootstrapped, settings: Settings) -> list[str]:
    """The console's URL and the admin operator's one-time sign-in link."""
    if not created.sign_in_path:
        return []
    site = site_url(settings)
    hours = f"{settings.console.link_ttl_hours:g}"
    return [
        f"  The operator console: {site}/console",
        f"  Sign in as {created.operator_email} (an admin) with this link: it works ONCE, within {hours} hours,",
        "  and asks you to choose a password:",
        "",
        f"    {site}{created.sign_in_path}",
        "",
        f"  A new link later: threadline users sign-in-link {created.operator_email} --workspace "
        f"{created.workspace_name}",
        "",
    ]


def _prompt_demo_lines(created: Bootstrapped, url: str) -> list[str]:
    """How to talk to the PROMPT demo agent, when it has a model: its thread and a curl line, as for the flow."""
    if not created.prompt_thread_id:
        return []
    return [
        f"  Its thread with the demo user: {created.prompt_thread_id}. Write to it and get",
        '  its reply (in "replies"; a model may take a while to answer):',
        "",
        f'    curl -H "Authorization: Bearer {created.secret}" -H "Content-Type: application/json" '
        f'-d \'{{"content": "Hello! What can you do?"}}\' '
        f'"{url}/v1/threads/{created.prompt_thread_id}/messages?wait=30"',
        "",
    ]


def banner(created: Bootstrapped, settings: Settings) -> str:
    url = base_url(settings)
    rule = "=" * 78
    lines = [
        "",
        rule,
        f"  threadline: first start. Created workspace '{created.workspace_name}', a demo agent",
        "  and an admin API key (scopes read, write, admin). The key is shown ONCE; store it now:",
        "",
        f"    THREADLINE_API_KEY={created.secret}",
        "",
        "  Read the demo thread (the demo agent, a scripted flow, answers its first message at once):",
        "",
        f'    curl -H "Authorization: Bearer {created.secret}" {url}/v1/threads/{created.thread_id}/messages',
        "",
        '  Write to the demo agent and get its reply (in "replies"):',
        "",
        f'    curl -H "Authorization: Bearer {created.secret}" -H "Content-Type: application/json" '
        f'-d \'{{"content": "Get support"}}\' "{url}/v1/threads/{created.thread_id}/messages?wait=10"',
        "",
        textwrap.fill(created.prompt_agent_note, width=78, initial_indent="  ", subsequent_indent="  "),
        "",
        *_prompt_demo_lines(created, url),
        *_console_lines(created, settings),
        f"  API docs: {url}/docs    More keys: threadline keys create --workspace "
        f"{created.workspace_name} --scopes read,write",
        rule,
        "",
    ]
    return "\n".join(lines) + "\n"
