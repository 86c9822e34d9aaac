"""What the providers' inbound webhooks share: finding the integration a webhook URL names, the URL the
provider signed, and storing an end user's message once.

``receive`` is the one way a channel stores an end user's message: it finds or creates the end user by
address (one per channel and address in a workspace) and the thread with the integration's agent on that
integration (the most recent one, else a new one pinned to the agent's current version), then appends the
message through ``flows.send.append_message``, which starts the agent's run. Finding and opening are
serialized on the end user's row, as ``threads.service.thread_between`` does, so two first messages at
once open one thread.

Providers deliver a message again when they are unsure it arrived (a timeout, a 5xx). The provider's
message id is stored as ``external_id``, unique per integration: a delivery whose id is stored already is
reported as a duplicate and stores nothing. It is looked for before anything is written, and again once
the sender's end user is locked: a concurrent delivery of the same message (the same sender) holds that
lock until it has committed, so the second one finds it then. The unique index stays the last guard.
The queries are ``channels.repository.InboundRepository``'s.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.channels.repository import InboundRepository
from threadline.config import Settings
from threadline.errors import Forbidden, NotFound, Unavailable
from threadline.flows.send import append_message
from threadline.integrations.service import ChannelCredentials, channel_credentials
from threadline.kit.secrets import SecretDecryptionError
from threadline.messages.service import NewMessage
from threadline.models import Agent, EndUser, Message, Thread
from threadline.models.enums import ChannelType, MessageType, Role, Source
from threadline.threads import service as threads
from threadline.threads.repository import ThreadRepository
from threadline.threads.schemas import ThreadCreate

log = structlog.get_logger(__name__)

MAX_DISPLAY_NAME_CHARS = 200


# ------------------------------------------------------------------------------------------ the integration


def not_found() -> NotFound:
    """The one answer for an unknown, disabled or other-type integration: it tells nothing about which."""
    return NotFound("no such channel endpoint")


async def credentials_for(
    session: AsyncSession, *, integration_id: str, type: ChannelType, settings: Settings
) -> ChannelCredentials:
    """The enabled integration of ``type`` whose public id is ``integration_id`` (in any workspace: the
    provider's signature, checked next with its secret, is what authenticates the request), else 404."""
    try:
        found = await channel_credentials(session, workspace_id=None, integration_id=integration_id, settings=settings)
    except NotFound:
        raise not_found() from None
    except SecretDecryptionError:
        # The secret that checks the signature cannot be read (a secret key was dropped): the provider retries.
        log.error("channels.inbound.secrets_unreadable", integration_id=integration_id)
        raise Unavailable("this channel cannot check signatures right now; try again later") from None
    if found.type is not type or not found.enabled:
        raise not_found()
    return found


def secret(credentials: ChannelCredentials, name: str) -> str:
    """One of the integration's secrets; an integration stored without it cannot authenticate anything (403)."""
    value = credentials.secrets.get(name)
    if not value:
        log.warning("channels.inbound.secret_missing", integration_id=str(credentials.public_id), secret=name)
        raise signature_refused()
    return value


def signature_refused(detail: str = "the request's signature does not match") -> Forbidden:
    return Forbidden(detail, code="invalid_signature")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of two strings (signatures, verify tokens)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


# ------------------------------------------------------------------------------------------ the signed URL


def public_url(request: Request, settings: Settings) -> str:
    """The URL the provider called, as it signed it.

    With ``public_base_url``: that base and the request's path below the app (a proxy may have stripped a
    prefix the base keeps), with the query string as received. Without it: the request's own URL, its
    scheme and host taken from ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (their first values) when
    ``trust_forwarded_headers`` is on."""
    scope = request.scope
    query = scope.get("query_string", b"").decode("latin-1")
    suffix = f"?{query}" if query else ""
    path: str = scope["path"]
    root: str = scope.get("root_path", "") or ""
    if settings.server.public_base_url is not None:
        if root and path.startswith(root):
            path = path[len(root) :]
        return settings.server.public_base_url.rstrip("/") + path + suffix
    scheme, host = request.url.scheme, request.url.netloc
    if settings.server.trust_forwarded_headers:
        forwarded_proto = _first(request.headers.get("x-forwarded-proto"))
        forwarded_host = _first(request.headers.get("x-forwarded-host"))
        if forwarded_proto in ("http", "https"):
            scheme = forwarded_proto
        if forwarded_host:
            host = forwarded_host
    return f"{scheme}://{host}{request.url.path}{suffix}"


def _first(value: str | None) -> str | None:
    """The first of a comma-separated header's values (the one the client-facing proxy set), or None."""
    if value is None:
        return None
    first = value.split(",")[0].strip()
    return first or None


# ------------------------------------------------------------------------------------------ storing


def type_for_content_type(content_type: str | None) -> MessageType:
    """Our message type for a media content type: image, audio or video by its top-level type, else a
    document (PDF, vCard, ...)."""
    major = (content_type or "").split("/")[0].strip().lower()
    return {"image": MessageType.IMAGE, "audio": MessageType.AUDIO, "video": MessageType.VIDEO}.get(
        major, MessageType.DOCUMENT
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` (text, or JSON made of dicts and lists) with what the databases refuse in text replaced by
    U+FFFD: NUL characters (PostgreSQL) and lone surrogates (not UTF-8), which a provider's JSON can carry."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


@dataclass(slots=True)
class InboundMessage:
    """An end user's message as a channel parsed it from its provider's webhook.

    ``address``: the end user's E.164 number. ``external_id``: the provider's message id (Twilio's
    ``MessageSid``, WhatsApp's ``wamid``). ``provider_account_id``: Twilio's account SID, WhatsApp's phone
    number id. ``display_name``: the name the provider knows the sender by, for a new end user.
    ``reply_to``: the provider's id of the message this one answers (WhatsApp's ``context.id``), which
    becomes ``in_response_to`` when it is stored on the same thread. ``start_run``: False for what is not
    a turn of the conversation (a reaction, a system notice)."""

    address: str
    external_id: str
    source: Source
    provider_account_id: str | None = None
    segments: int | None = None
    content: str = ""
    type: MessageType = MessageType.TEXT
    media_url: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    display_name: str = ""
    reply_to: str | None = None
    start_run: bool = True


@dataclass(frozen=True, slots=True)
class Received:
    """What ``receive`` did with a message: stored it (``message``, on thread ``thread_id``), or found it
    stored already (``duplicate``: a provider's redelivery; ``message`` is None)."""

    message: Message | None
    thread_id: str | None

    @property
    def duplicate(self) -> bool:
        return self.message is None


class NoAgent(Unavailable):
    """The integration routes to no agent, so a message has no thread to go to (503: the provider retries,
    and the message arrives once an agent is set)."""

    code = "channel_has_no_agent"


async def receive(
    session: AsyncSession, *, channel: ChannelCredentials, messages: Sequence[InboundMessage]
) -> list[Received]:
    """Store each of ``messages`` (end users' messages that came through ``channel``, in the order the
    provider sent them) once; one ``Received`` per message, in the same order. Flushes, never commits: the
    runs the messages start are picked up once the caller's transaction commits.

    First every sender's end user is found or created and locked (in address order, so that two
    notifications naming the same senders cannot deadlock); then each message is checked again under that
    lock, which a concurrent delivery of the same message (same sender) holds until it commits, and
    appended. No savepoint is opened once a message is appended: ``jobs.service`` takes a savepoint's
    release for the commit and would start the run's job before the transaction commits."""
    repo = InboundRepository(session, channel.workspace_id)
    seen = [await repo.has_message(channel.id, m.external_id) for m in messages]
    pending = [m for m, known in zip(messages, seen, strict=True) if not known]
    agent_id = channel.agent_id
    if pending and agent_id is None:
        log.warning("channels.inbound.no_agent", integration_id=str(channel.public_id))
        raise NoAgent("this channel routes to no agent yet; its messages are taken once one is set")
    names = {m.address: m.display_name for m in reversed(pending)}  # the first name given for each sender
    end_users = {a: await _locked_end_user(session, repo, channel.type, a, names[a]) for a in sorted(names)}
    threads_by_end_user: dict[int, Thread] = {}
    results = []
    for message, known in zip(messages, seen, strict=True):
        if known or agent_id is None or await repo.has_message(channel.id, message.external_id):
            results.append(Received(None, None))
            continue
        end_user = end_users[message.address]
        thread = threads_by_end_user.get(end_user.id)
        if thread is None:
            thread = await _thread_for(session, repo, channel, agent_id, end_user)
            threads_by_end_user[end_user.id] = thread
        results.append(Received(await _append(session, repo, channel, thread, message), str(thread.public_id)))
    return results


async def _thread_for(
    session: AsyncSession, repo: InboundRepository, channel: ChannelCredentials, agent_id: int, end_user: EndUser
) -> Thread:
    """The end user's latest thread with the agent ``agent_id`` on this integration, else a new one."""
    thread = await repo.latest_thread(agent_id=agent_id, end_user_id=end_user.id, integration_id=channel.id)
    if thread is not None:
        return thread
    agent_uid = (await repo.public_ids(Agent, {agent_id}))[agent_id]
    data = ThreadCreate(
        agent_id=str(agent_uid), end_user_id=str(end_user.public_id), integration_id=str(channel.public_id)
    )
    return await threads.create_thread(session, workspace_id=channel.workspace_id, data=data)


async def _append(
    session: AsyncSession, repo: InboundRepository, channel: ChannelCredentials, thread: Thread, inbound: InboundMessage
) -> Message:
    in_response_to_id = None
    if inbound.reply_to is not None:
        in_response_to_id = await repo.message_key(thread.id, channel.id, inbound.reply_to)
    new = NewMessage(
        role=Role.USER,
        content=storable(inbound.content),
        type=inbound.type,
        media_url=storable(inbound.media_url),
        attachments=storable(inbound.attachments),
        metadata=storable(inbound.metadata),
        source=inbound.source,
        external_id=inbound.external_id,
        provider_account_id=inbound.provider_account_id,
        segments=inbound.segments,
        in_response_to_id=in_response_to_id,
        start_run=inbound.start_run,
    )
    appended = await append_message(
        session, workspace_id=channel.workspace_id, thread_id=str(thread.public_id), new=new
    )
    return appended.message


async def _locked_end_user(
    session: AsyncSession, repo: InboundRepository, channel: ChannelType, address: str, display_name: str
) -> EndUser:
    """The end user at ``address`` on ``channel``, created if new, its row locked until the transaction
    ends (what serializes the messages of one sender, as ``threads.service.thread_between`` does).

    The one found may be erased while we wait for their row (the erasure frees the address, under that
    lock): then the address is looked up again, and the message goes to a new end user, never to them."""
    for _ in range(2):
        locked = await _find_or_create(session, repo, channel, address, display_name)
        if locked is not None:
            return locked
    raise Unavailable("the end user changed while this message was stored; try again")  # deleted meanwhile


async def _find_or_create(
    session: AsyncSession, repo: InboundRepository, channel: ChannelType, address: str, display_name: str
) -> EndUser | None:
    end_user = await repo.end_user_by_address(channel, address)
    if end_user is None:
        end_user = await repo.add_end_user(channel, address, storable(display_name[:MAX_DISPLAY_NAME_CHARS]))
    if end_user is None:
        # A concurrent first message from the same address created them (and committed): take theirs.
        end_user = await repo.end_user_by_address(channel, address)
    if end_user is None:
        return None
    return await ThreadRepository(session, repo.workspace_id).lock_end_user(str(end_user.public_id))
