"""End users: the people agents talk to, one per (channel, address) in a workspace."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.end_users.repository import EndUserRepository
from threadline.end_users.schemas import EndUserCreate, EndUserUpdate, address_problem
from threadline.errors import Conflict, ValidationFailed
from threadline.kit.pagination import Page, PageRequest
from threadline.models import EndUser
from threadline.models.enums import ChannelType


def _address_taken(channel: ChannelType, address: str | None) -> Conflict:
    return Conflict(
        f"an end user with address '{address}' on the {channel.value} channel already exists",
        param="address",
        code="end_user_exists",
    )


async def create_end_user(session: AsyncSession, *, workspace_id: int, data: EndUserCreate) -> EndUser:
    repo = EndUserRepository(session, workspace_id)
    if data.address is not None and await repo.by_address(data.channel, data.address) is not None:
        raise _address_taken(data.channel, data.address)
    end_user = EndUser(
        workspace_id=workspace_id,
        display_name=data.display_name,
        channel=data.channel,
        address=data.address,
        info=data.info,
        metadata_=data.metadata,
    )
    # The check above misses a concurrent insert of the same address; the unique index does not.
    try:
        async with session.begin_nested():
            session.add(end_user)
    except IntegrityError:
        raise _address_taken(data.channel, data.address) from None
    return end_user


async def get_end_user(session: AsyncSession, *, workspace_id: int, end_user_id: str) -> EndUser:
    return await EndUserRepository(session, workspace_id).get_end_user(end_user_id)


async def list_end_users(
    session: AsyncSession,
    *,
    workspace_id: int,
    page: PageRequest,
    channel: ChannelType | None = None,
    address: str | None = None,
) -> Page[EndUser]:
    return await EndUserRepository(session, workspace_id).list(page, channel=channel, address=address)


async def update_end_user(
    session: AsyncSession, *, workspace_id: int, end_user_id: str, data: EndUserUpdate
) -> EndUser:
    """Changes the fields present in ``data``; ``null`` clears ``address`` or ``info``."""
    repo = EndUserRepository(session, workspace_id)
    end_user = await repo.get_end_user(end_user_id)
    changes = data.model_dump(include=data.model_fields_set)
    channel: ChannelType = changes.get("channel", end_user.channel)
    address: str | None = changes.get("address", end_user.address)
    if (problem := address_problem(channel, address)) is not None:
        raise ValidationFailed(f"address: {problem}", param="address")
    moved = (channel, address) != (end_user.channel, end_user.address)
    if moved and address is not None and await repo.by_address(channel, address) is not None:
        raise _address_taken(channel, address)
    try:
        async with session.begin_nested():
            for field, value in changes.items():
                setattr(end_user, "metadata_" if field == "metadata" else field, value)
    except IntegrityError:
        raise _address_taken(channel, address) from None
    return end_user


async def delete_end_user(session: AsyncSession, *, workspace_id: int, end_user_id: str) -> None:
    """Deletes the end user with their threads and those threads' messages, in this transaction (an erasure
    that also reaches events, webhook deliveries and stored responses is privacy.service's)."""
    repo = EndUserRepository(session, workspace_id)
    await repo.delete_end_user(await repo.get_end_user(end_user_id))
