"""The ``channels.deliver`` job: sends one outbound message (stored QUEUED on an SMS or WhatsApp thread by
``messages.service.append_message``) through its integration's provider, and drives its lifecycle.

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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.channels import ChannelError, SentMessage
from threadline.channels.outbox import (
    DELIVER_KIND,
    DELIVERED_CHANNELS,
    HELD_CODE,
    HELD_MESSAGE,
    RECEIPT_KIND,
    dedupe_key,
)
from threadline.channels.twilio.client import TwilioClient
from threadline.channels.twilio.inbound import MESSAGE_TAG
from threadline.channels.whatsapp.client import MessageKind, ReplyButton, Template, WhatsAppClient
from threadline.config import Settings, environment_settings
from threadline.errors import NotFound
from threadline.events.types import EventType
from threadline.integrations.service import ChannelCredentials, channel_credentials
from threadline.jobs import service as jobs
from threadline.jobs.registry import OUTBOUND_POOL, JobContext, Reschedule, task
from threadline.jobs.repository import JobRepository
from threadline.kit.clock import utcnow
from threadline.kit.secrets import SecretDecryptionError
from threadline.messages import lifecycle
from threadline.models import EndUser, Event, Message, Thread
from threadline.models.enums import ChannelType, Direction, MessageStatus, MessageType, SentBy

log = structlog.get_logger(__name__)

S = MessageStatus
ORDER_WAIT: Final = timedelta(minutes=10)  # an earlier message pending longer than this is not waited for
ORDER_RECHECK_S: Final = 2.0  # the fallback; the earlier message's job starts this one as soon as it ends
WHATSAPP_MAX_BUTTONS: Final = 3
WHATSAPP_MAX_BUTTON_TITLE: Final = 20


class SendFailed(Exception):
    """A transient failure, left to the worker to retry after at least ``retry_after_s``."""

    def __init__(self, error: ChannelError) -> None:
        super().__init__(str(error))
        self.retry_after_s = error.retry_after_s


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The message as the provider call needs it, read in step 1."""

    id: int
    public_id: str
    workspace_id: int
    thread_id: int
    seq: int
    type: MessageType
    content: str
    blocks: list[dict[str, Any]] | None
    media_url: str | None
    to: str
    integration_id: int


@task(DELIVER_KIND, pool=OUTBOUND_POOL)
async def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
    if ctx.sessionmaker is None:
        raise RuntimeError("channels.deliver needs the worker's sessionmaker")
    settings = ctx.settings or environment_settings()
    message_id = int(payload["message_id"])
    async with ctx.sessionmaker() as session, session.begin():
        step = await _prepare(session, message_id, settings)
    if step is None:
        return
    if isinstance(step, _Wait):
        raise Reschedule(ORDER_RECHECK_S, "an earlier message of the thread is on its way")
    outgoing, credentials = step
    began = time.perf_counter()

    def observe(outcome: str) -> None:
        if ctx.metrics is not None:
            ctx.metrics.observe_channel_send(credentials.type.value, outcome, time.perf_counter() - began)

    try:
        sent = await send(outgoing, credentials, settings)
    except ChannelError as error:
        final = not error.retryable or error.maybe_sent or ctx.attempt >= ctx.max_attempts
        bound = log.bind(message_id=outgoing.public_id, code=error.code, attempt=ctx.attempt)
        observe("failed" if final else "retry")
        if not final:
            bound.warning("channels.send_retry", retry_after_s=error.retry_after_s)
            raise SendFailed(error) from None
        bound.warning("channels.send_failed", maybe_sent=error.maybe_sent)
        fields = lifecycle.ProviderFields(error_code=error.code, error_message=_explained(error))
        await _record(ctx.session, outgoing, S.FAILED, fields)
        return
    observe("sent")
    fields = lifecycle.ProviderFields(
        external_id=sent.provider_id,
        provider_account_id=sent.account_id,
        segments=sent.segments,
        price=sent.price,
        price_currency=sent.price_currency,
    )
    await _record(ctx.session, outgoing, S.SENT, fields)


@task(RECEIPT_KIND, pool=OUTBOUND_POOL)
async def read_receipt(ctx: JobContext, payload: dict[str, Any]) -> None:
    """WhatsApp's read receipt for an end user's message (``messages.service.mark_read``). Transient failures
    are retried like sends; anything else is logged and dropped: a missing blue tick is not worth more."""
    if ctx.sessionmaker is None:
        raise RuntimeError("channels.read_receipt needs the worker's sessionmaker")
    settings = ctx.settings or environment_settings()
    async with ctx.sessionmaker() as session:
        message = await session.get(Message, int(payload["message_id"]))
        if message is None or message.external_id is None or message.integration_id is None:
            return
        try:
            credentials = await channel_credentials(
                session, workspace_id=message.workspace_id, integration_id=message.integration_id, settings=settings
            )
        except (NotFound, SecretDecryptionError):
            return
    if credentials.type is not ChannelType.WHATSAPP or not credentials.enabled:
        return
    try:
        await _whatsapp(credentials, settings).mark_read(message.external_id)
    except ChannelError as error:
        if error.retryable and ctx.attempt < ctx.max_attempts:
            raise SendFailed(error) from None
        log.warning("channels.read_receipt_failed", message_id=str(message.public_id), code=error.code)


class _Wait:
    """Step 1's answer when an earlier message of the thread goes first."""


async def _prepare(
    session: AsyncSession, message_id: int, settings: Settings
) -> tuple[Outgoing, ChannelCredentials] | _Wait | None:
    row = (
        await session.execute(
            select(Message, EndUser.address, Thread.integration_id, Thread.active, Thread.public_id)
            .join(Thread, Thread.id == Message.thread_id)
            .join(EndUser, EndUser.id == Thread.end_user_id)
            .where(Message.id == message_id)
        )
    ).one_or_none()
    if row is None:
        return None  # deleted with its thread
    message, address, thread_integration, thread_active, thread_uid = row
    if message.status not in (S.QUEUED, S.SENDING):
        return None
    if (
        message.sent_by is SentBy.AGENT
        and not thread_active
        and await _taken_over(session, message.workspace_id, thread_uid)
    ):
        # The handoff found it on its way (SENDING, waiting to try again): the agent's words stop here too.
        fields = lifecycle.ProviderFields(error_code=HELD_CODE, error_message=HELD_MESSAGE)
        await lifecycle.advance(
            session, workspace_id=message.workspace_id, message_id=message.id, to=S.FAILED, at=utcnow(), provider=fields
        )
        return None
    if await _earlier_pending(session, message):
        return _Wait()
    outgoing = Outgoing(
        id=message.id,
        public_id=str(message.public_id),
        workspace_id=message.workspace_id,
        thread_id=message.thread_id,
        seq=message.seq,
        type=message.type,
        content=message.content or "",
        blocks=message.blocks,
        media_url=message.media_url,
        to=address or "",
        integration_id=message.integration_id or thread_integration or 0,
    )
    problem: ChannelError | None = None
    credentials = None
    try:
        credentials = await channel_credentials(
            session, workspace_id=message.workspace_id, integration_id=outgoing.integration_id, settings=settings
        )
    except NotFound:
        problem = ChannelError("integration_missing", "the thread's integration no longer exists", False)
    except SecretDecryptionError:
        log.error("channels.send_secrets_unreadable", message_id=outgoing.public_id)
        problem = ChannelError("secrets_unreadable", "the integration's credentials cannot be decrypted", False)
    if credentials is not None:
        if credentials.type not in DELIVERED_CHANNELS:
            problem = ChannelError("not_a_channel", f"{credentials.type.value} integrations deliver nothing", False)
        elif not credentials.enabled:
            problem = ChannelError("integration_disabled", "the thread's integration is disabled", False)
        elif not outgoing.to:
            problem = ChannelError("no_recipient", "the end user has no address on this channel", False)
    if problem is not None or credentials is None:
        assert problem is not None
        fields = lifecycle.ProviderFields(error_code=problem.code, error_message=problem.message)
        await _record(session, outgoing, S.FAILED, fields)
        return None
    await lifecycle.advance(
        session, workspace_id=outgoing.workspace_id, message_id=outgoing.id, to=S.SENDING, at=utcnow()
    )
    return outgoing, credentials


async def _taken_over(session: AsyncSession, workspace_id: int, thread_uid: uuid.UUID) -> bool:
    """Whether the thread's latest handoff was a human's (or the API's), not the agent's own (read backwards
    along the events' (workspace, thread, seq) index)."""
    data = await session.scalar(
        select(Event.data)
        .where(
            Event.workspace_id == workspace_id,
            Event.thread_id == thread_uid,
            Event.type == EventType.THREAD_HANDOFF_STARTED,
        )
        .order_by(Event.seq.desc())
        .limit(1)
    )
    return not (isinstance(data, dict) and data.get("by") == "agent")


async def _earlier_pending(session: AsyncSession, message: Message) -> bool:
    stmt = (
        select(Message.id)
        .where(
            Message.thread_id == message.thread_id,
            Message.seq < message.seq,
            Message.direction == Direction.OUTBOUND,
            Message.status.in_((S.QUEUED, S.SENDING)),
            Message.created_at > utcnow() - ORDER_WAIT,
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def _record(
    session: AsyncSession, outgoing: Outgoing, to: MessageStatus, fields: lifecycle.ProviderFields
) -> None:
    """The attempt's outcome, then the thread's next message started if it waits its turn."""
    try:
        await lifecycle.advance(
            session, workspace_id=outgoing.workspace_id, message_id=outgoing.id, to=to, at=utcnow(), provider=fields
        )
    except NotFound:
        return  # deleted while it was sent
    following = await session.scalar(
        select(Message.id)
        .where(
            Message.thread_id == outgoing.thread_id,
            Message.seq > outgoing.seq,
            Message.direction == Direction.OUTBOUND,
            Message.status == S.QUEUED,
        )
        .order_by(Message.seq)
        .limit(1)
    )
    if following is None:
        return
    if await JobRepository(session).wake(now=utcnow(), dedupe_key=(DELIVER_KIND, dedupe_key(following))):
        await jobs.notify_workers(session, DELIVER_KIND)


def _explained(error: ChannelError) -> str:
    if error.maybe_sent:
        return (
            f"{error.message}; the provider may have taken the message, so it was not sent again "
            "(its delivery reports still update it)"
        )
    return error.message


# ------------------------------------------------------------------------------------------ the provider call


async def send(outgoing: Outgoing, credentials: ChannelCredentials, settings: Settings) -> SentMessage:
    """One provider call for ``outgoing``. Raises ``ChannelError``."""
    timeout_s, allow_private = settings.channel_send_timeout_s, settings.channel_allow_private_urls
    if credentials.type is ChannelType.SMS:
        config = credentials.settings
        twilio = TwilioClient(
            str(config["api_base_url"]),
            str(config["account_sid"]),
            credentials.secrets.get("auth_token", ""),
            timeout_s=timeout_s,
            allow_private=allow_private,
        )
        body = sms_body(outgoing)
        if not body and not outgoing.media_url:
            raise ChannelError("empty_message", "the message has no text or media to send", False)
        callback = None
        if config.get("status_callback", True) and settings.public_base_url:
            callback = (
                f"{settings.public_base_url.rstrip('/')}/channels/twilio/{credentials.public_id}/status"
                f"?{MESSAGE_TAG}={outgoing.public_id}"
            )
        return await twilio.send_sms(
            to=outgoing.to,
            body=body,
            from_number=config.get("from_number"),
            messaging_service_sid=config.get("messaging_service_sid") if not config.get("from_number") else None,
            status_callback=callback,
            media_url=outgoing.media_url if outgoing.type is not MessageType.TEXT else None,
        )
    whatsapp = _whatsapp(credentials, settings)
    kind, arguments = whatsapp_content(outgoing)
    return await whatsapp.send(to=outgoing.to, kind=kind, callback_data=outgoing.public_id, **arguments)


def _whatsapp(credentials: ChannelCredentials, settings: Settings) -> WhatsAppClient:
    config = credentials.settings
    return WhatsAppClient(
        str(config["api_base_url"]),
        str(config["api_version"]),
        str(config["phone_number_id"]),
        credentials.secrets.get("access_token", ""),
        timeout_s=settings.channel_send_timeout_s,
        allow_private=settings.channel_allow_private_urls,
    )


def _blocks(outgoing: Outgoing, type_: str) -> list[dict[str, Any]]:
    return [b for b in outgoing.blocks or () if isinstance(b, dict) and b.get("type") == type_]


def _buttons(outgoing: Outgoing) -> list[tuple[str, str]]:
    """(payload, title) of the buttons a message offers."""
    found = []
    for block in _blocks(outgoing, "buttons"):
        for button in block.get("buttons") or ():
            if isinstance(button, dict) and str(button.get("title") or "").strip():
                title = str(button["title"]).strip()
                found.append((str(button.get("payload") or title), title))
    return found


def sms_body(outgoing: Outgoing) -> str:
    """The SMS text: the content, and a button message's choices one per line (the end user types one;
    the flow engine matches a typed title or payload)."""
    text = outgoing.content.strip()
    buttons = _buttons(outgoing)
    if buttons:
        choices = "\n".join(f"- {title}" for _, title in buttons)
        text = f"{text}\n{choices}" if text else choices
    return text


def whatsapp_content(outgoing: Outgoing) -> tuple[MessageKind, dict[str, Any]]:
    """The WhatsApp message kind and ``WhatsAppClient.send`` arguments for ``outgoing``."""
    text = outgoing.content.strip()
    media_kinds: dict[MessageType, MessageKind] = {
        MessageType.IMAGE: "image",
        MessageType.AUDIO: "audio",
        MessageType.VIDEO: "video",
        MessageType.DOCUMENT: "document",
    }
    if outgoing.type in media_kinds and outgoing.media_url:
        kind = media_kinds[outgoing.type]
        return kind, {"media_url": outgoing.media_url, "text": (text or None) if kind != "audio" else None}
    if outgoing.type is MessageType.TEMPLATE:
        for block in _blocks(outgoing, "template"):
            if block.get("name"):
                return "template", {"template": _template(block)}
    buttons = _buttons(outgoing)
    if buttons:
        fits = len(buttons) <= WHATSAPP_MAX_BUTTONS and all(
            len(title) <= WHATSAPP_MAX_BUTTON_TITLE and len(payload) <= 256 for payload, title in buttons
        )
        if fits and text:
            return "interactive_buttons", {"text": text, "buttons": [ReplyButton(p, t) for p, t in buttons]}
        text = sms_body(outgoing)  # too many or too long for reply buttons: the choices as text
    if not text:
        raise ChannelError("empty_message", "the message has no text or media to send", False)
    return "text", {"text": text}


def _template(block: dict[str, Any]) -> Template:
    """A template block (``name``, ``language``, ``params``: a list, or named parameters) as WhatsApp's."""
    params = block.get("params")
    parameters: list[dict[str, Any]] = []
    if isinstance(params, list):
        parameters = [{"type": "text", "text": str(value)} for value in params]
    elif isinstance(params, dict):
        parameters = [{"type": "text", "parameter_name": str(k), "text": str(v)} for k, v in params.items()]
    components = [{"type": "body", "parameters": parameters}] if parameters else []
    return Template(name=str(block["name"]), language=str(block.get("language") or "en_US"), components=components)
