"""The audit log of administrative actions: who did what to which resource, when, from where.

``record`` writes one row in the caller's transaction, so a change and its record commit or roll back
together. The caller says who acted (an ``Actor``): the endpoint from the request's principal, the CLI as
itself, the runtime as the agent; nothing is read from globals but the request id (from the log context,
which every request has). ``details`` must hold names and flags only: never a secret, never message content.

Recording an action of your own (an end user's export or erasure, say), in the transaction that does it::

    await audit.record(
        session,
        workspace_id=auth.workspace_id,
        actor=request_actor(auth, request),  # threadline.audit.deps
        action=AuditAction.END_USER_ERASED,
        target_id=end_user.public_id,
        details={"job_id": str(job.public_id)},
    )

A GET runs on the read sessionmaker (autocommit, see db.engine): there, record in a transaction of the app's
write sessionmaker (``request.app.state.sessionmaker``) instead, before the response starts.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit.actions import AuditAction
from threadline.audit.repository import AuditRepository
from threadline.audit.schemas import AuditFilters
from threadline.auth.principal import Principal
from threadline.kit.pagination import Page, PageRequest
from threadline.models import AuditActorType, AuditEvent

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did an audited action. ``id`` is public (a key's or agent's id; for the CLI the operating-system
    user); ``key_prefix`` is an API key's display prefix. An API key or an agent may be given by its row id
    (``row_id``) instead: it is resolved to its public id when the action is recorded."""

    type: AuditActorType
    id: str | None = None
    key_prefix: str | None = None
    address: str | None = None
    row_id: int | None = None

    @classmethod
    def for_key(cls, principal: Principal, *, address: str | None = None) -> Actor:
        """The API key a request authenticated with (``address``: where the request came from)."""
        return cls(AuditActorType.API_KEY, row_id=principal.api_key_id, address=address)

    @classmethod
    def cli(cls) -> Actor:
        """The ``threadline`` command, as the operating-system user running it."""
        try:
            user: str | None = getpass.getuser()
        except (KeyError, OSError):  # no login name in a bare container
            user = None
        return cls(AuditActorType.CLI, id=user)

    @classmethod
    def operator(cls, user_public_id: uuid.UUID | str, *, address: str | None = None) -> Actor:
        """A person signed in to the console (a user of the workspace), and where their request came from."""
        return cls(AuditActorType.USER, id=str(user_public_id), address=address)

    @classmethod
    def agent(cls, agent_row_id: int) -> Actor:
        """An agent, acting through one of its runs (a handoff to a human)."""
        return cls(AuditActorType.AGENT, row_id=agent_row_id)

    @classmethod
    def system(cls) -> Actor:
        """threadline itself: the first-start bootstrap, an endpoint disabled after failures."""
        return cls(AuditActorType.SYSTEM)


async def record(
    session: AsyncSession,
    *,
    workspace_id: int,
    actor: Actor,
    action: AuditAction,
    target_id: uuid.UUID | str | None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record ``action`` on the resource ``target_id`` (its type is the action's family) in ``session``'s
    transaction: it is kept when that commits and gone when it rolls back."""
    repo = AuditRepository(session, workspace_id)
    actor_id, key_prefix = await _identify(repo, actor)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    event = await repo.add(
        AuditEvent(
            actor_type=actor.type,
            actor_id=actor_id,
            actor_key_prefix=key_prefix,
            action=action.value,
            target_type=action.target_type,
            target_id=uuid.UUID(str(target_id)) if target_id is not None else None,
            request_id=request_id if isinstance(request_id, str) else None,
            client_address=actor.address,
            details=details or {},
        )
    )
    log.info("audit.recorded", action=action.value, actor_type=actor.type.value, target_id=str(target_id))
    return event


async def _identify(repo: AuditRepository, actor: Actor) -> tuple[str | None, str | None]:
    if actor.row_id is None:
        return actor.id, actor.key_prefix
    if actor.type is AuditActorType.API_KEY:
        found = await repo.key_identity(actor.row_id)
        return (str(found[0]), found[1]) if found is not None else (None, None)
    agent = await repo.agent_public_id(actor.row_id)
    return (str(agent) if agent is not None else None), None


async def list_events(
    session: AsyncSession, *, workspace_id: int, page: PageRequest, filters: AuditFilters
) -> Page[AuditEvent]:
    return await AuditRepository(session, workspace_id).page(page, filters)


async def get_event(session: AsyncSession, *, workspace_id: int, audit_event_id: str) -> AuditEvent:
    return await AuditRepository(session, workspace_id).get_event(audit_event_id)
