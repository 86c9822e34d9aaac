"""Users: the human operators of a workspace (email unique per workspace, case-insensitively), their console
role and their password."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import Conflict
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest
from threadline.models import User
from threadline.users import passwords
from threadline.users.repository import UserRepository
from threadline.users.schemas import UserCreate, UserUpdate


def _email_taken(email: str) -> Conflict:
    return Conflict(f"a user with email '{email}' already exists", param="email", code="user_exists")


async def create_user(session: AsyncSession, *, workspace_id: int, data: UserCreate) -> User:
    repo = UserRepository(session, workspace_id)
    if await repo.by_email(data.email) is not None:
        raise _email_taken(data.email)
    user = User(
        workspace_id=workspace_id,
        email=data.email,
        first_name=data.first_name,
        last_name=data.last_name,
        metadata_=data.metadata,
        role=data.role,
    )
    # The check above misses a concurrent insert of the same email; the unique constraint does not.
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise _email_taken(data.email) from None
    return user


async def get_user(session: AsyncSession, *, workspace_id: int, user_id: str) -> User:
    return await UserRepository(session, workspace_id).get_user(user_id)


async def list_users(
    session: AsyncSession, *, workspace_id: int, page: PageRequest, email: str | None = None
) -> Page[User]:
    return await UserRepository(session, workspace_id).list(page, email=email)


async def update_user(session: AsyncSession, *, workspace_id: int, user_id: str, data: UserUpdate) -> User:
    """Changes the fields present in ``data``; ``null`` clears a name."""
    repo = UserRepository(session, workspace_id)
    user = await repo.get_user(user_id)
    changes = data.model_dump(include=data.model_fields_set)
    email = changes.get("email")
    if email is not None and email.lower() != user.email.lower() and await repo.by_email(email) is not None:
        raise _email_taken(email)
    try:
        async with session.begin_nested():
            for field, value in changes.items():
                setattr(user, "metadata_" if field == "metadata" else field, value)
    except IntegrityError:
        raise _email_taken(email or "") from None
    return user


async def delete_user(session: AsyncSession, *, workspace_id: int, user_id: str) -> None:
    """Removes the user; their thread assignments go too and their messages keep no author."""
    repo = UserRepository(session, workspace_id)
    await repo.delete_user(await repo.get_user(user_id))


async def find_user(session: AsyncSession, *, workspace_id: int, ref: str) -> User | None:
    """The workspace's user named by ``ref``: a public id, else an email (any case); None when there is none."""
    repo = UserRepository(session, workspace_id)
    if parse_uuid(ref) is not None:
        return await repo.find(User, ref)
    return await repo.by_email(ref.strip())


async def set_password(session: AsyncSession, *, user: User, password: str) -> None:
    """Gives ``user`` this password (a 422 naming ``password`` when it is too short or too long) and ends every
    console session they have: whoever signed in with the old one is signed out."""
    user.password_hash = await passwords.hash_password(password)
    await UserRepository(session, user.workspace_id).end_sessions(user)


async def check_password(session: AsyncSession, *, user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s (False for no user, or one without a password, after the same work).
    A hash made with older parameters is replaced by one with today's."""
    stored = user.password_hash if user is not None else None
    if not await passwords.verify_password(stored, password):
        return False
    if user is not None and stored is not None and passwords.needs_rehash(stored):
        user.password_hash = await passwords.hash_password(password)
    return user is not None
