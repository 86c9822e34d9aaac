"""First start: on an empty database, create workspace ``default``, an admin key and a demo agent.

The admin key's secret is printed once, to stdout, and never logged: logs are shipped and kept,
stdout of a first start is read by the person who started it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.api_keys.service import create_key
from threadline.config import Settings
from threadline.db.engine import WRITE_OPTION
from threadline.messages.service import NewMessage, append_message
from threadline.models import Agent, AgentVersion, EndUser, Thread
from threadline.models.enums import AgentMode, AgentType, ChannelType, Role, Scope
from threadline.workspaces.service import any_workspace, create_workspace

log = structlog.get_logger(__name__)

DEFAULT_WORKSPACE = "default"
BOOTSTRAP_KEY_NAME = "bootstrap admin"
# Any constant bigint works; this one spells "threadln" in ASCII so it is recognisable in pg_locks.
ADVISORY_LOCK_ID = 0x7468726561646C6E

DEMO_FLOW: dict[str, Any] = {
    "start": "greet",
    "nodes": {
        "greet": {"type": "send_text", "text": "Hi! I'm the threadline demo agent.", "next": "end"},
        "end": {"type": "end"},
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


async def bootstrap_if_empty(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, out: TextIO | None = None
) -> None:
    """Seed an empty database (one transaction) and print the admin key once; do nothing otherwise.

    Safe when several processes start at once: on PostgreSQL they queue on a transaction-scoped
    advisory lock, on SQLite on the write lock (BEGIN IMMEDIATE); whoever comes second finds a
    workspace and leaves.
    """
    created = await _seed_if_empty(sessionmaker)
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


async def _seed_if_empty(sessionmaker: async_sessionmaker[AsyncSession]) -> Bootstrapped | None:
    async with sessionmaker() as session:
        # A read first, so that every start after the first takes no lock at all.
        if await any_workspace(session):
            return None
    async with sessionmaker() as session, session.begin():
        # On SQLite the write option makes this BEGIN IMMEDIATE, whichever sessionmaker we were given.
        conn = await session.connection(execution_options={WRITE_OPTION: True})
        if conn.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        if await any_workspace(session):
            return None
        return await _seed(session)


async def _seed(session: AsyncSession) -> Bootstrapped:
    workspace = await create_workspace(session, name=DEFAULT_WORKSPACE)
    key, secret = await create_key(
        session,
        workspace_id=workspace.id,
        scopes=[Scope.READ, Scope.WRITE, Scope.ADMIN],
        name=BOOTSTRAP_KEY_NAME,
    )
    agent = Agent(
        workspace_id=workspace.id,
        name="Demo agent",
        description="A scripted flow that greets whoever writes to it.",
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
    thread = Thread(workspace_id=workspace.id, agent_id=agent.id, agent_version_id=version.id, end_user_id=end_user.id)
    session.add(thread)
    await session.flush()
    await append_message(
        session,
        workspace_id=workspace.id,
        thread_id=str(thread.public_id),
        new=NewMessage(role=Role.USER, content="Hello! This is the demo user's first message."),
    )
    return Bootstrapped(
        workspace_name=workspace.name,
        workspace_id=str(workspace.public_id),
        key_id=str(key.public_id),
        secret=secret,
        agent_id=str(agent.public_id),
        end_user_id=str(end_user.public_id),
        thread_id=str(thread.public_id),
    )


def base_url(settings: Settings) -> str:
    """The URL a person on this machine can reach the server at (a wildcard bind becomes loopback)."""
    host = settings.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


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
        "  Try it:",
        "",
        f'    curl -H "Authorization: Bearer {created.secret}" {url}/v1/threads/{created.thread_id}/messages',
        "",
        f"  API docs: {url}/docs    More keys: threadline keys create --workspace "
        f"{created.workspace_name} --scopes read,write",
        rule,
        "",
    ]
    return "\n".join(lines) + "\n"
