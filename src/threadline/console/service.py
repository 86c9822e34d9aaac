"""The console's sign-in: operators (a workspace's users) sign in with their email and password, or once with a
sign-in link, and get a server-side session.

Tokens (a session's, a link's) are random and shown once, to the browser or the person; only their SHA-256 is
stored. A session carries its own CSRF token. Every lookup reads the user again, so a changed role applies
at once and a deleted user (or workspace) is signed out with their rows.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.console import display, repository
from threadline.console.repository import ConsoleRepository
from threadline.errors import Conflict, ThreadlineError, ValidationFailed
from threadline.kit.clock import utcnow
from threadline.models import ConsoleSession, SignInLink, User, UserRole
from threadline.users import service as users
from threadline.users.schemas import UserCreate

log = structlog.get_logger(__name__)

LINK_PATH = "/console/welcome"
SEEN_EVERY = timedelta(minutes=5)  # last_seen_at is written at most this often per session
MAX_CANDIDATES = 10  # users one email may name across workspaces, for one sign-in


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SignInRefused(ThreadlineError):
    status_code = 401
    code = "sign_in_failed"
    type = "authentication_error"


class WorkspaceNeeded(ThreadlineError):
    """The email and password are right in more than one workspace: the operator must say which."""

    status_code = 409
    code = "workspace_needed"
    type = "conflict_error"


@dataclass(frozen=True, slots=True)
class Operator:
    """The signed-in operator of a console request: who, in which workspace, with which role."""

    session_id: int
    workspace_id: int
    workspace_public_id: uuid.UUID
    workspace_name: str
    user_id: int
    user_public_id: uuid.UUID
    email: str
    first_name: str | None
    last_name: str | None
    role: UserRole
    csrf_token: str
    last_seen_at: datetime

    @property
    def name(self) -> str:
        return display.person(self.first_name, self.last_name, self.email)

    @property
    def initials(self) -> str:
        parts = [p for p in (self.first_name, self.last_name) if p] or [self.email]
        return "".join(p[0] for p in parts[:2]).upper()

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    def may(self, role: UserRole) -> bool:
        """Whether this operator has ``role`` or one above it (admin is above operator)."""
        return self.is_admin or role == UserRole.OPERATOR


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: its token goes into the cookie, once."""

    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkHolder:
    """Whom an unused sign-in link signs in (shown on its landing page before it is used)."""

    email: str
    workspace_name: str
    has_password: bool


def _operator(row: ConsoleSession, user: User, workspace_name: str, workspace_public_id: uuid.UUID) -> Operator:
    return Operator(
        session_id=row.id,
        workspace_id=row.workspace_id,
        workspace_public_id=workspace_public_id,
        workspace_name=workspace_name,
        user_id=user.id,
        user_public_id=user.public_id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        role=user.role,
        csrf_token=row.csrf_token,
        last_seen_at=row.last_seen_at,
    )


async def operator_for(session: AsyncSession, *, token: str) -> Operator | None:
    """The operator signed in with this session token, or None (unknown, signed out, expired)."""
    if not token or len(token) > 200:
        return None
    found = await repository.live_session(session, digest(token), utcnow())
    if found is None:
        return None
    row, user, workspace_name, workspace_public_id = found
    return _operator(row, user, workspace_name, workspace_public_id)


def due_for_seen(operator: Operator, now: datetime | None = None) -> bool:
    return (now or utcnow()) - operator.last_seen_at >= SEEN_EVERY


async def mark_seen(session: AsyncSession, *, operator: Operator) -> None:
    await ConsoleRepository(session, operator.workspace_id).mark_seen(operator.session_id, utcnow())


async def open_session(session: AsyncSession, *, user: User, ttl: timedelta) -> NewSession:
    now = utcnow()
    repo = ConsoleRepository(session, user.workspace_id)
    await repo.purge_sessions(user.id, now)
    token, csrf_token = new_token(), new_token()
    expires_at = now + ttl
    await repo.add_session(
        ConsoleSession(
            workspace_id=user.workspace_id,
            user_id=user.id,
            token_hash=digest(token),
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
            last_seen_at=now,
        )
    )
    log.info("console.signed_in", user_id=str(user.public_id), workspace_id=user.workspace_id)
    return NewSession(token=token, csrf_token=csrf_token, expires_at=expires_at)


async def sign_in(
    session: AsyncSession, *, email: str, password: str, workspace_name: str | None, ttl: timedelta
) -> NewSession:
    """A session for the user with this email and password (in the workspace named, or the only one where they
    match); SignInRefused otherwise, after the same work whether or not the email is known."""
    email = email.strip()
    candidates = await repository.users_by_email(
        session, email, workspace_name=workspace_name or None, limit=MAX_CANDIDATES
    )
    matches: list[tuple[User, str]] = []
    if not candidates:
        await users.check_password(session, user=None, password=password)
    for user, name in candidates:
        if await users.check_password(session, user=user, password=password):
            matches.append((user, name))
    if not matches:
        raise SignInRefused("wrong email or password")
    if len(matches) > 1:
        raise WorkspaceNeeded("this email signs in to more than one workspace: name the workspace", param="workspace")
    return await open_session(session, user=matches[0][0], ttl=ttl)


async def sign_out(session: AsyncSession, *, token: str) -> None:
    """End the session of this token (nothing when there is none)."""
    if token:
        await repository.delete_session(session, digest(token))


async def create_operator(
    session: AsyncSession,
    *,
    workspace_id: int,
    email: str,
    role: UserRole = UserRole.OPERATOR,
    first_name: str | None = None,
    last_name: str | None = None,
) -> User:
    """A new user of the workspace, through the users service (the same checks as ``POST /v1/users``)."""
    try:
        data = UserCreate(email=email, role=role, first_name=first_name, last_name=last_name)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationFailed(f"{param}: {first.get('msg', 'invalid')}", param=param) from None
    user = await users.create_user(session, workspace_id=workspace_id, data=data)
    await session.flush()
    return user


async def issue_link(session: AsyncSession, *, user: User, ttl: timedelta) -> str:
    """A one-time sign-in link's token for ``user``; the path to open is ``link_path(token)``."""
    now = utcnow()
    repo = ConsoleRepository(session, user.workspace_id)
    await repo.purge_links(user.id, now)
    token = new_token()
    await repo.add_link(
        SignInLink(
            workspace_id=user.workspace_id,
            user_id=user.id,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


def link_path(token: str) -> str:
    """Where a sign-in link lands: the token rides in the query string, which access logs leave out."""
    return f"{LINK_PATH}?token={token}"


async def link_holder(session: AsyncSession, *, token: str) -> LinkHolder | None:
    """Whom this link signs in, or None when it is unknown, used or expired (it stays unused)."""
    if not token or len(token) > 200:
        return None
    found = await repository.live_link(session, digest(token), utcnow())
    if found is None:
        return None
    _, user, workspace_name = found
    return LinkHolder(email=user.email, workspace_name=workspace_name, has_password=user.password_hash is not None)


async def use_link(session: AsyncSession, *, token: str, password: str | None, ttl: timedelta) -> NewSession:
    """Use the link (once) and open a session; with ``password``, set it first (a user without one must).
    SignInRefused when the link is unknown, used or expired."""
    found = await repository.live_link(session, digest(token), utcnow()) if token and len(token) <= 200 else None
    if found is None:
        raise SignInRefused("this sign-in link is not valid: it was used already, or it expired", code="link_invalid")
    link, user, _ = found
    if password is None and user.password_hash is None:
        raise ValidationFailed("choose a password to finish signing in", param="password")
    if password is not None:
        await users.set_password(session, user=user, password=password)
    if not await ConsoleRepository(session, user.workspace_id).use_link(link.id, utcnow()):
        raise Conflict("this sign-in link was just used", code="link_invalid")
    log.info("console.link_used", user_id=str(user.public_id), workspace_id=user.workspace_id)
    return await open_session(session, user=user, ttl=ttl)
