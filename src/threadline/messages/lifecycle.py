"""The delivery lifecycle of a message: a state machine the channels drive (the send job, the providers'
status callbacks), where a report arriving late, twice or out of order never moves a message backwards.

Outbound messages (stored QUEUED on SMS and WhatsApp) climb a ladder; FAILED and UNDELIVERED share a
rung, and a proof of delivery (DELIVERED, READ) outranks them::

    QUEUED (0) -> SENDING (1) -> SENT (2) -> FAILED | UNDELIVERED (3) -> DELIVERED (4) -> READ (5)

A message moves to a status only from a lower rung. ``advance(to=...)``, by current status (``=``: the
same status again, nothing moves; ``no``: refused, the status stays)::

    from \\ to     SENDING  SENT  FAILED  UNDELIVERED  DELIVERED  READ
    QUEUED        yes      yes   yes     yes          yes        yes
    SENDING       =        yes   yes     yes          yes        yes
    SENT          no       =     yes     yes          yes        yes
    FAILED        no       no    =       no           yes        yes
    UNDELIVERED   no       no    no      =            yes        yes
    DELIVERED     no       no    no      no           =          yes
    READ          no       no    no      no           no         =

Nothing moves a message back to QUEUED. Inbound messages have their own two states: RECEIVED ->
DISCARDED (``discard_inbound``). A status of the other direction's machine (DELIVERED for a RECEIVED
message, DISCARDED for an outbound one) changes nothing at all, not even provider fields.

Why this order:

- Skipping rungs is allowed: a DELIVERED callback may be the first report we get after QUEUED or SENDING.
- A failure (WhatsApp sends ``failed`` after ``sent``; Twilio ``undelivered`` after ``sent``) beats every
  state before delivery, but not DELIVERED or READ: those are reports from the recipient's side, proof
  that the message arrived, and a failure after them is a stale or mistaken one. Being a total order on
  rungs, the same holds the other way round: DELIVERED or READ after FAILED wins, so the end state is the
  same whichever of the two arrived first.
- FAILED and UNDELIVERED are the same rung: the first verdict stays (the second one's error fields still
  fill those the first left empty).

Every report is also a set of facts, merged whether or not the status moves, so that the end state does
not depend on the order the reports arrive in:

- Reaching a status happened at ``at``, and reaching it implies reaching the rungs of the delivery chain
  below it: SENT sets ``sent_at``; DELIVERED sets ``delivered_at`` and ``sent_at``; READ sets ``read_at``,
  ``delivered_at`` and ``sent_at``; FAILED and UNDELIVERED set ``failed_at``. Each timestamp keeps the
  earliest time reported (the message got there no later than that), so a repeat of a callback never
  changes it, and a late SENT still puts its real ``sent_at`` in place of the one a DELIVERED implied.
- Provider fields (``external_id``, ``provider_account_id``, ``segments``, ``price``, ``price_currency``,
  ``error_code``, ``error_message``) fill the ones still missing: a known value is never replaced, and
  never erased by a report that lacks it (when two reports disagree, the first one recorded stays).

So DELIVERED then a late SENT stays DELIVERED, with the SENT's price filled if it was missing; FAILED
after DELIVERED stays DELIVERED (its ``failed_at`` and error are kept as reported facts).

Each call that changes anything records one ``message.updated`` event carrying the message as /v1 shows
it and ``changes`` naming the changed fields (``status`` among them when it moved); a call that changes
nothing (a provider retrying a callback) records none.

Concurrency: the change is planned from the row as read, then written by one UPDATE guarded by that
status and by the old values of the columns it writes (``MessageRepository.transition``). Two callbacks
for the same message serialize on its row in the database; the one that finds its guard broken re-reads
the row and plans again, so no report is lost, none is applied twice, and none moves a message back.
Callers use a write session (on SQLite one that begins with ``BEGIN IMMEDIATE``, as the app's do).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import NotFound
from threadline.events.types import EventType
from threadline.kit.clock import utcnow
from threadline.messages.repository import MessageRepository, ReportRepository
from threadline.messages.service import _record
from threadline.models import Message, Thread
from threadline.models.enums import MessageStatus

S = MessageStatus

OUTBOUND_RANK: dict[MessageStatus, int] = {
    S.QUEUED: 0,
    S.SENDING: 1,
    S.SENT: 2,
    S.FAILED: 3,
    S.UNDELIVERED: 3,
    S.DELIVERED: 4,
    S.READ: 5,
}
INBOUND_RANK: dict[MessageStatus, int] = {S.RECEIVED: 0, S.DISCARDED: 1}
_MACHINES = (OUTBOUND_RANK, INBOUND_RANK)

# The timestamps a status sets: its own and those of the delivery rungs it implies.
REACHED: dict[MessageStatus, tuple[str, ...]] = {
    S.SENT: ("sent_at",),
    S.DELIVERED: ("sent_at", "delivered_at"),
    S.READ: ("sent_at", "delivered_at", "read_at"),
    S.FAILED: ("failed_at",),
    S.UNDELIVERED: ("failed_at",),
}


@dataclass(frozen=True, slots=True)
class ProviderFields:
    """What a provider reported about its message; None means "not reported", never "erase"."""

    external_id: str | None = None
    provider_account_id: str | None = None
    segments: int | None = None
    price: str | None = None
    price_currency: str | None = None
    error_code: str | None = None
    error_message: str | None = None


_PROVIDER_FIELDS = tuple(f.name for f in fields(ProviderFields))


@dataclass(frozen=True, slots=True)
class Advance:
    """The outcome of a report: the message as it is now, its status before, whether the status moved,
    and the fields that changed (empty: the report told nothing new, and no event was recorded)."""

    message: Message
    previous: MessageStatus
    moved: bool
    changes: tuple[str, ...]


def allowed(source: MessageStatus, to: MessageStatus) -> bool:
    """Whether a message in ``source`` moves to ``to`` (the table in this module's docstring)."""
    for rank in _MACHINES:
        if source in rank and to in rank:
            return rank[to] > rank[source]
    return False


def plan(message: Any, to: MessageStatus, at: datetime, provider: ProviderFields | None) -> dict[str, Any]:
    """The column values a report changes on ``message`` (an ORM object or a row), in the order of the
    event's ``changes``: only what differs from the message as it is."""
    if not any(message.status in rank and to in rank for rank in _MACHINES):
        return {}
    values: dict[str, Any] = {}
    if allowed(message.status, to):
        values["status"] = to
    for name in REACHED.get(to, ()):
        known = getattr(message, name)
        if known is None or at < known:
            values[name] = at
    if provider is not None:
        for name in _PROVIDER_FIELDS:
            reported = getattr(provider, name)
            if reported is not None and getattr(message, name) is None:
                values[name] = reported
    return values


async def advance(
    session: AsyncSession,
    *,
    workspace_id: int | None,
    message_id: int,
    to: MessageStatus,
    at: datetime,
    provider: ProviderFields | None = None,
) -> Advance:
    """Apply the report "message ``message_id`` (its row id) reached ``to`` at ``at``",
    with what the provider said about it. ``workspace_id`` None: whichever workspace the message is in
    (a channel that knows only the integration); otherwise 404 for another workspace's message."""
    await session.flush()  # the read below refreshes the session's copy: changes made to it go out first
    message = await _current(session, message_id)
    if message is not None and (workspace_id is None or message.workspace_id == workspace_id):
        result = await _apply(session, message, to, at, provider)
        if result is not None:
            return result
    raise NotFound("the message is gone")  # deleted meanwhile, or another workspace's: its row id is never shown


async def fail_agent_messages_waiting(
    session: AsyncSession, *, workspace_id: int, thread_key: int, at: datetime, provider: ProviderFields
) -> None:
    """The agent's messages of a thread still waiting to go out (QUEUED, their send not started) never will:
    each ends FAILED with ``provider``'s error fields."""
    for message_id in await MessageRepository(session, workspace_id).agent_messages_waiting(thread_key):
        await advance(
            session, workspace_id=workspace_id, message_id=message_id, to=MessageStatus.FAILED, at=at, provider=provider
        )


async def advance_by_external_id(
    session: AsyncSession,
    *,
    integration_id: int,
    external_id: str,
    to: MessageStatus,
    at: datetime,
    provider: ProviderFields | None = None,
    tag: str | None = None,
) -> Advance | None:
    """``advance`` for a status callback that names the message by the provider's id, unique within the
    integration. ``tag``: the message's public id as the send job gave it to the provider (Twilio's
    ``StatusCallback`` query, WhatsApp's ``biz_opaque_callback_data``), which finds a message whose send
    timed out before the provider's id came back: the report then records that id as well.

    None when no message has that id: the caller still answers the provider 200, because
    the id is unknown for good (a message sent outside threadline from the same number or account, or
    one whose thread was deleted), and an error answer would only make the provider redeliver it for days
    (WhatsApp retries for up to 7 days, replaying the other statuses of the same notification with it)."""
    await session.flush()
    message = await ReportRepository(session).by_external_id(integration_id, external_id)
    if message is None and tag is not None:
        message = await _tagged(session, integration_id, tag, external_id)
        if message is not None and message.external_id is None:
            provider = replace(provider or ProviderFields(), external_id=external_id)
    if message is None:
        return None
    return await _apply(session, message, to, at, provider)


async def _tagged(session: AsyncSession, integration_id: int, tag: str, external_id: str) -> Message | None:
    """The outbound message of the integration whose public id is ``tag``, with no provider id yet or with
    ``external_id``: the send job may have recorded it between the lookup by provider id and this one (a
    report that comes as soon as the provider took the message races the job's commit)."""
    try:
        public_id = uuid.UUID(tag)
    except ValueError:
        return None
    return await ReportRepository(session).by_tag(integration_id, public_id, external_id)


async def _current(session: AsyncSession, message_id: int) -> Message | None:
    """The message as committed now (not a copy the session holds from earlier)."""
    return await ReportRepository(session).current(message_id)


async def _apply(
    session: AsyncSession, message: Message, to: MessageStatus, at: datetime, provider: ProviderFields | None
) -> Advance | None:
    """The report applied; None if the message was deleted meanwhile."""
    if at.tzinfo is None:
        raise ValueError("advance: 'at' must be timezone-aware")
    while True:
        previous = message.status
        values = plan(message, to, at, provider)
        if not values:
            return Advance(message=message, previous=previous, moved=False, changes=())
        repo = MessageRepository(session, message.workspace_id)
        # Guarded by the status planned from (when moving, one of the allowed sources of ``to``).
        updated = await repo.transition(
            message.id,
            sources=(previous,),
            unchanged={name: getattr(message, name) for name in values if name != "status"},
            values={**values, "updated_at": utcnow()},
        )
        if updated is not None:
            break
        # Another writer changed the message since we read it: plan again from what it committed.
        reread = await _current(session, message.id)
        if reread is None:
            return None
        message = reread
    changes = list(values)
    thread_uid = (await repo.public_ids(Thread, {updated.thread_id}))[updated.thread_id]
    await _record(session, updated.workspace_id, thread_uid, [updated], EventType.MESSAGE_UPDATED, changes)
    return Advance(message=updated, previous=previous, moved="status" in values, changes=tuple(changes))
