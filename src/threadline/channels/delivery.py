"""The ``channels.deliver`` job: sends one outbound message (stored QUEUED on an SMS or WhatsApp thread by
``flows.send.append_message``) through its integration's provider, and drives its lifecycle. What
the provider is and how it is called is its ``ChannelSender``'s, found by channel type in
``channels.registry``; this module only claims, sends through it, records and retries.

One attempt:

1. In a short transaction of its own: nothing to do if the message is past SENDING (a status callback or
   an earlier attempt got there first) or was deleted. It waits (the job is rescheduled, the attempt does
   not count) while an earlier outbound message of the same thread is still QUEUED or SENDING, so that a
   thread's messages reach the end user in their order; a message stuck for longer than
   ``ORDER_WAIT`` is not waited for. Otherwise QUEUED -> SENDING (an event), committed before the provider
   is called, so that every observer sees the message on its way.
2. The provider's API is called with no transaction open.
3. In the job's own transaction, which commits with the job's completion: SENT with the provider's message
   id, account, segments and price (``messages.lifecycle``), or FAILED with the provider's error code and
   message. Then the next QUEUED message of the thread, if its job is waiting its turn, is started at once.

What is retried: a failure after which the same request may succeed (no connection, the provider's 5xx,
429 and its own "try again" codes), with the worker's backoff and at least the provider's
``Retry-After``, until ``channel_send_max_attempts``; the message stays SENDING meanwhile. What is not:
everything the provider refused (a bad number, credentials, a template), and a request that went out
with no answer back (a read timeout, a connection dropped mid-answer), because the provider may have
taken it and sending again would send it twice: the message goes FAILED with code ``timeout``, and if
the provider did take it, its status reports still find it (the send gives the provider the message's
public id: Twilio's ``StatusCallback`` query, WhatsApp's ``biz_opaque_callback_data``), fill in the
provider's id, and move it on to DELIVERED or READ. A worker that dies during the call leaves the
message SENDING; the job's next attempt sends it again (at least once, in that one case).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.channels.errors import ChannelError
from threadline.channels.outbox import DELIVER_KIND, HELD_CODE, HELD_MESSAGE, RECEIPT_KIND, dedupe_key
from threadline.channels.registry import sender_for
from threadline.channels.repository import DeliveryRepository
from threadline.channels.sender import ChannelSender, Outgoing, SendOptions, SentMessage
from threadline.config import Settings
from threadline.errors import NotFound
from threadline.integrations.service import ChannelCredentials, channel_credentials
from threadline.jobs import service as jobs
from threadline.jobs.registry import OUTBOUND_POOL, JobContext, Reschedule, task
from threadline.jobs.repository import JobRepository
from threadline.kit.clock import utcnow
from threadline.kit.secrets import SecretDecryptionError
from threadline.messages import lifecycle
from threadline.models.enums import MessageStatus, SentBy

log = structlog.get_logger(__name__)

S = MessageStatus
ORDER_WAIT: Final = timedelta(minutes=10)  # an earlier message pending longer than this is not waited for
ORDER_RECHECK_S: Final = 2.0  # the fallback; the earlier message's job starts this one as soon as it ends


class SendFailed(Exception):
    """A transient failure, left to the worker to retry after at least ``retry_after_s``."""

    def __init__(self, error: ChannelError) -> None:
        super().__init__(str(error))
        self.retry_after_s = error.retry_after_s


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message is: its row id, workspace, thread and place in the thread."""

    id: int
    workspace_id: int
    thread_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message step 1 moved to SENDING: where it is, what its sender gets (``outgoing``), and through which
    ``sender`` and integration (``credentials``) it goes."""

    place: Place
    outgoing: Outgoing
    sender: ChannelSender
    credentials: ChannelCredentials


def send_options(settings: Settings) -> SendOptions:
    return SendOptions(
        timeout_s=settings.channels.send_timeout_s,
        allow_private=settings.channels.allow_private_urls,
        public_base_url=settings.server.public_base_url,
    )


@task(DELIVER_KIND, pool=OUTBOUND_POOL)
async def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
    if ctx.sessionmaker is None or ctx.workspace_id is None:
        raise RuntimeError("channels.deliver needs the worker's sessionmaker and the job's workspace")
    settings = ctx.settings
    message_id = int(payload["message_id"])
    async with ctx.sessionmaker() as session, session.begin():
        step = await _claim(session, ctx.workspace_id, message_id, settings)
    if step is None:
        return
    if isinstance(step, _Wait):
        raise Reschedule(ORDER_RECHECK_S, "an earlier message of the thread is on its way")
    channel, began = step.credentials.type.value, time.perf_counter()

    def observe(outcome: str) -> None:
        if ctx.metrics is not None:
            ctx.metrics.observe_channel_send(channel, outcome, time.perf_counter() - began)

    try:
        sent = await step.sender.send(step.outgoing, step.credentials)
    except ChannelError as error:
        final = not error.retryable or error.maybe_sent or ctx.attempt >= ctx.max_attempts
        bound = log.bind(message_id=step.outgoing.public_id, code=error.code, attempt=ctx.attempt)
        observe("failed" if final else "retry")
        if not final:
            bound.warning("channels.send_retry", retry_after_s=error.retry_after_s)
            raise SendFailed(error) from None
        bound.warning("channels.send_failed", maybe_sent=error.maybe_sent)
        fields = lifecycle.ProviderFields(error_code=error.code, error_message=_explained(error))
        await _record(ctx.session, step.place, S.FAILED, fields)
        return
    observe("sent")
    await _record(ctx.session, step.place, S.SENT, _sent_fields(sent))


@task(RECEIPT_KIND, pool=OUTBOUND_POOL)
async def read_receipt(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The provider's read receipt for an end user's message (``flows.read.mark_read``), on a channel
    that shows them (WhatsApp). Transient failures are retried like sends; anything else is logged and
    dropped: a missing blue tick is not worth more."""
    if ctx.sessionmaker is None or ctx.workspace_id is None:
        raise RuntimeError("channels.read_receipt needs the worker's sessionmaker and the job's workspace")
    settings = ctx.settings
    async with ctx.sessionmaker() as session:
        message = await DeliveryRepository(session, ctx.workspace_id).message(int(payload["message_id"]))
        if message is None or message.external_id is None or message.integration_id is None:
            return
        try:
            credentials = await channel_credentials(
                session, workspace_id=message.workspace_id, integration_id=message.integration_id, settings=settings
            )
        except (NotFound, SecretDecryptionError):
            return
    sender = sender_for(credentials.type, send_options(settings))
    if sender is None or not sender.read_receipts or not credentials.enabled:
        return
    try:
        await sender.mark_read(credentials, message.external_id)
    except ChannelError as error:
        if error.retryable and ctx.attempt < ctx.max_attempts:
            raise SendFailed(error) from None
        log.warning("channels.read_receipt_failed", message_id=str(message.public_id), code=error.code)


class _Wait:
    """Step 1's answer when an earlier message of the thread goes first."""


async def _claim(
    session: AsyncSession, workspace_id: int, message_id: int, settings: Settings
) -> Claimed | _Wait | None:
    """Step 1: the message moved to SENDING with what sending it takes; ``_Wait`` while an earlier one of its
    thread goes first; None when there is nothing to send (gone, past SENDING, held or failed here)."""
    repo = DeliveryRepository(session, workspace_id)
    row = await repo.outgoing(message_id)
    if row is None:
        return None  # deleted with its thread
    message, address, thread_integration, thread_active, thread_uid = row
    if message.status not in (S.QUEUED, S.SENDING):
        return None
    if message.sent_by is SentBy.AGENT and not thread_active and await _taken_over(repo, thread_uid):
        # The handoff found it on its way (SENDING, waiting to try again): the agent's words stop here too.
        fields = lifecycle.ProviderFields(error_code=HELD_CODE, error_message=HELD_MESSAGE)
        await lifecycle.advance(
            session, workspace_id=message.workspace_id, message_id=message.id, to=S.FAILED, at=utcnow(), provider=fields
        )
        return None
    if await repo.earlier_pending(message, since=utcnow() - ORDER_WAIT):
        return _Wait()
    place = Place(id=message.id, workspace_id=message.workspace_id, thread_id=message.thread_id, seq=message.seq)
    outgoing = Outgoing(
        public_id=str(message.public_id),
        type=message.type,
        content=message.content or "",
        blocks=message.blocks,
        media_url=message.media_url,
        to=address or "",
    )
    integration_id = message.integration_id or thread_integration or 0
    problem: ChannelError | None = None
    credentials = sender = None
    try:
        credentials = await channel_credentials(
            session, workspace_id=message.workspace_id, integration_id=integration_id, settings=settings
        )
    except NotFound:
        problem = ChannelError("integration_missing", "the thread's integration no longer exists", False)
    except SecretDecryptionError:
        log.error("channels.send_secrets_unreadable", message_id=outgoing.public_id)
        problem = ChannelError("secrets_unreadable", "the integration's credentials cannot be decrypted", False)
    if credentials is not None:
        sender = sender_for(credentials.type, send_options(settings))
        if sender is None:
            problem = ChannelError("not_a_channel", f"{credentials.type.value} integrations deliver nothing", False)
        elif not credentials.enabled:
            problem = ChannelError("integration_disabled", "the thread's integration is disabled", False)
        elif not outgoing.to:
            problem = ChannelError("no_recipient", "the end user has no address on this channel", False)
    if problem is not None or credentials is None or sender is None:
        assert problem is not None
        fields = lifecycle.ProviderFields(error_code=problem.code, error_message=problem.message)
        await _record(session, place, S.FAILED, fields)
        return None
    await lifecycle.advance(session, workspace_id=place.workspace_id, message_id=place.id, to=S.SENDING, at=utcnow())
    return Claimed(place, outgoing, sender, credentials)


async def _taken_over(repo: DeliveryRepository, thread_uid: uuid.UUID) -> bool:
    """Whether the thread's latest handoff was a human's (or the API's), not the agent's own."""
    data = await repo.latest_handoff(thread_uid)
    return not (isinstance(data, dict) and data.get("by") == "agent")


async def _record(session: AsyncSession, place: Place, to: MessageStatus, fields: lifecycle.ProviderFields) -> None:
    """The attempt's outcome, then the thread's next message started if it waits its turn."""
    try:
        await lifecycle.advance(
            session, workspace_id=place.workspace_id, message_id=place.id, to=to, at=utcnow(), provider=fields
        )
    except NotFound:
        return  # deleted while it was sent
    following = await DeliveryRepository(session, place.workspace_id).next_queued(place.thread_id, place.seq)
    if following is None:
        return
    if await JobRepository(session).wake(now=utcnow(), dedupe_key=(DELIVER_KIND, dedupe_key(following))):
        await jobs.notify_workers(session, DELIVER_KIND)


def _sent_fields(sent: SentMessage) -> lifecycle.ProviderFields:
    return lifecycle.ProviderFields(
        external_id=sent.provider_id,
        provider_account_id=sent.account_id,
        segments=sent.segments,
        price=sent.price,
        price_currency=sent.price_currency,
    )


def _explained(error: ChannelError) -> str:
    if error.maybe_sent:
        return (
            f"{error.message}; the provider may have taken the message, so it was not sent again "
            "(its delivery reports still update it)"
        )
    return error.message
