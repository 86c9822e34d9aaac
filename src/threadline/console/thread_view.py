"""What the console's thread view shows of a message, built from a stored message (or from the message as an event
carries it, for a status change): who wrote it, its text, buttons and media, the agent's tool calls and model
calls, and its delivery status. Plain data for the templates: nothing here is HTML, and every string stays
untrusted (the templates escape it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.console import display
from threadline.end_users import service as end_users
from threadline.errors import NotFound, ThreadlineError
from threadline.events.repository import EventRepository
from threadline.kit.pagination import Order, PageRequest
from threadline.messages import service as messages
from threadline.models import Message
from threadline.models.enums import Direction, MessageStatus, MessageType, Role, SentBy
from threadline.models.run import RunStatus
from threadline.runs import service as runs
from threadline.tags import service as tags
from threadline.threads import inbox
from threadline.threads import service as threads
from threadline.threads.schemas import InboxRow, ThreadFilters
from threadline.users import service as users

Kind = Literal["end_user", "agent", "operator", "system", "tool", "hidden"]
Tone = Literal["pending", "sent", "delivered", "read", "failed", "muted"]

MAX_JSON_CHARS = 4000  # a tool's arguments or result beyond this are cut (the API has them whole)

_STATUS: dict[MessageStatus, tuple[str, Tone]] = {
    MessageStatus.QUEUED: ("Queued", "pending"),
    MessageStatus.SENDING: ("Sending", "pending"),
    MessageStatus.SENT: ("Sent", "sent"),
    MessageStatus.DELIVERED: ("Delivered", "delivered"),
    MessageStatus.READ: ("Read", "read"),
    MessageStatus.FAILED: ("Failed", "failed"),
    MessageStatus.UNDELIVERED: ("Undelivered", "failed"),
    MessageStatus.RECEIVED: ("Received", "muted"),
    MessageStatus.DISCARDED: ("Discarded", "muted"),
}


@dataclass(frozen=True, slots=True)
class StatusView:
    """An outbound message's place in its delivery lifecycle, as its ticks show it."""

    message_id: str
    status: str  # MessageStatus's value
    label: str
    tone: Tone
    outbound: bool
    at: datetime | None  # when it reached this status (as far as the message records it)
    error: str | None  # the provider's error on a failed message: "code: message"


@dataclass(frozen=True, slots=True)
class ToolCallView:
    id: str
    name: str
    arguments: str  # pretty JSON
    result: str | None
    error: str | None
    duration_ms: float | None


@dataclass(frozen=True, slots=True)
class IterationView:
    """One model call of the agent's run: its reasoning, what it said, the tools it called, its cost and time."""

    number: int  # from 1
    text: str | None
    reasoning: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    duration_ms: float | None
    resumed: bool
    tool_calls: list[ToolCallView]


@dataclass(frozen=True, slots=True)
class ButtonView:
    title: str
    payload: str | None


@dataclass(frozen=True, slots=True)
class MediaView:
    kind: str  # image, audio, video, document, file
    url: str | None  # http(s) only: anything else is shown, never linked
    name: str


@dataclass(frozen=True, slots=True)
class MessageView:
    id: str
    kind: Kind
    author: str
    author_key: str  # whose avatar colour: the end user's or the operator's id
    content: str
    type: str
    created_at: datetime
    status: StatusView
    buttons: list[ButtonView] = field(default_factory=list)
    media: list[MediaView] = field(default_factory=list)
    iterations: list[IterationView] = field(default_factory=list)
    tool_calls: list[ToolCallView] = field(default_factory=list)  # those no iteration names
    part: str | None = None  # "1/3": one provider message of a text split for its channel
    hidden_reason: str | None = None

    @property
    def has_trace(self) -> bool:
        return bool(self.iterations or self.tool_calls)

    @property
    def tool_call_count(self) -> int:
        return len(self.tool_calls) + sum(len(i.tool_calls) for i in self.iterations)


def when(value: Any) -> datetime | None:
    """A datetime, from the object a message holds or the ISO text an event carries."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def safe_url(value: Any) -> str | None:
    """``value`` when it is an http(s) URL (a link the console may show); None for anything else (javascript:,
    data:, relative paths...)."""
    if not isinstance(value, str) or len(value) > 4096:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value.strip()


def pretty(value: Any) -> str:
    """JSON as a person reads it, cut at ``MAX_JSON_CHARS``."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= MAX_JSON_CHARS else text[: MAX_JSON_CHARS - 1] + "…"


def status_view(data: Mapping[str, Any]) -> StatusView:
    """The status of a message given as /v1 shows it (a message.updated event's data) or as its columns."""
    try:
        status = MessageStatus(str(data.get("status")))
    except ValueError:
        status = MessageStatus.SENT
    label, tone = _STATUS[status]
    outbound = str(data.get("direction")) == Direction.OUTBOUND.value
    at = {
        MessageStatus.SENT: data.get("sent_at"),
        MessageStatus.DELIVERED: data.get("delivered_at"),
        MessageStatus.READ: data.get("read_at"),
        MessageStatus.FAILED: data.get("failed_at"),
        MessageStatus.UNDELIVERED: data.get("failed_at"),
    }.get(status)
    error = None
    if tone == "failed":
        code, message = data.get("error_code"), data.get("error_message")
        error = ": ".join(str(p) for p in (code, message) if p) or None
    return StatusView(
        message_id=str(data.get("id")),
        status=status.value,
        label=label,
        tone=tone,
        outbound=outbound,
        at=when(at),
        error=error,
    )


def _status_of(message: Any) -> StatusView:
    return status_view(
        {
            "id": str(message.public_id),
            "status": message.status,
            "direction": message.direction,
            "sent_at": message.sent_at,
            "delivered_at": message.delivered_at,
            "read_at": message.read_at,
            "failed_at": message.failed_at,
            "error_code": message.error_code,
            "error_message": message.error_message,
        }
    )


def _kind(message: Any) -> Kind:
    if message.role is Role.USER:
        return "end_user"
    if message.role is Role.HIDDEN:
        return "hidden"
    if message.role is Role.SYSTEM:
        return "system"
    if message.role is Role.TOOL:
        return "tool"
    return "operator" if message.sent_by is SentBy.OPERATOR else "agent"


def _tool_call(record: Any) -> ToolCallView:
    record = record if isinstance(record, dict) else {"result": record}
    duration = record.get("duration_ms")
    return ToolCallView(
        id=str(record.get("id") or ""),
        name=str(record.get("name") or "tool"),
        arguments=pretty(record.get("arguments", {})),
        result=pretty(record["result"]) if "result" in record else None,
        error=str(record["error"]) if record.get("error") else None,
        duration_ms=float(duration) if isinstance(duration, int | float) else None,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _trace(message: Any) -> tuple[list[IterationView], list[ToolCallView]]:
    calls = [_tool_call(c) for c in message.tool_calls or []]
    by_id = {c.id: c for c in calls if c.id}
    placed: set[str] = set()
    iterations = []
    for position, raw in enumerate(message.iterations or []):
        if not isinstance(raw, dict):
            continue
        mine = [by_id[i] for i in raw.get("tool_calls") or [] if isinstance(i, str) and i in by_id]
        placed.update(c.id for c in mine)
        usage: dict[str, Any] = raw["usage"] if isinstance(raw.get("usage"), dict) else {}
        duration = raw.get("duration_ms")
        index = raw.get("index")
        iterations.append(
            IterationView(
                number=(index + 1) if isinstance(index, int) else position + 1,
                text=str(raw["text"]) if raw.get("text") else None,
                reasoning=str(raw["reasoning"]) if raw.get("reasoning") else None,
                finish_reason=str(raw["finish_reason"]) if raw.get("finish_reason") else None,
                input_tokens=_int(usage.get("input_tokens")),
                output_tokens=_int(usage.get("output_tokens")),
                duration_ms=float(duration) if isinstance(duration, int | float) else None,
                resumed=bool(raw.get("resumed")),
                tool_calls=mine,
            )
        )
    return iterations, [c for c in calls if c.id not in placed]


def _buttons(message: Any) -> list[ButtonView]:
    found = []
    for block in message.blocks or []:
        if isinstance(block, dict) and block.get("type") == "buttons":
            for button in block.get("buttons") or []:
                if isinstance(button, dict) and button.get("title"):
                    payload = button.get("payload")
                    found.append(ButtonView(str(button["title"]), str(payload) if payload is not None else None))
    return found


_MEDIA_KINDS = {"image", "audio", "video", "document"}
# Why the run path kept an agent's reply from the end user (``metadata.not_sent``).
_HIDDEN_REASONS = {
    "human_handoff": "Not sent: a person had taken the thread over",
    "thread_blocked": "Not sent: the end user is blocked",
    "cancelled": "Not sent: the run was cancelled",
}


def _media(message: Any) -> list[MediaView]:
    found: list[MediaView] = []
    seen: set[str] = set()

    def add(kind: str, url: Any, name: Any = None) -> None:
        key = str(url)
        if url is None or key in seen:
            return
        seen.add(key)
        link = safe_url(url)
        label = str(name) if name else (urlsplit(link).path.rsplit("/", 1)[-1] if link else "") or kind.capitalize()
        found.append(MediaView(kind if kind in _MEDIA_KINDS else "file", link, label[:200]))

    if message.media_url:
        add(message.type.value if message.type is not MessageType.TEXT else "file", message.media_url)
    for block in message.blocks or []:
        if isinstance(block, dict) and block.get("type") in _MEDIA_KINDS:
            add(str(block["type"]), block.get("url"), block.get("name") or block.get("filename"))
    for item in message.attachments or []:
        if isinstance(item, dict):
            kind = str(item.get("type") or "")
            content_type = str(item.get("content_type") or item.get("mime_type") or "")
            if kind not in _MEDIA_KINDS:
                kind = next((k for k in ("image", "audio", "video") if content_type.startswith(k + "/")), "file")
            add(kind, item.get("url") or item.get("media_url"), item.get("name") or item.get("filename"))
    return found


def message_view(
    message: Any, *, operators: Mapping[int, Person], agent_name: str, end_user: tuple[str, str] = ("End user", "")
) -> MessageView:
    """The view of a stored message (an ORM object, or a page's plain row of its columns). ``operators``: the
    users who may have written it (by row id); ``end_user``: the thread's end user's name and id."""
    kind = _kind(message)
    author, author_key = agent_name, ""
    if kind == "end_user":
        author, author_key = end_user
    elif kind == "system":
        author = "System"
    elif kind == "tool":
        author = "Tool"
    elif message.sent_by is SentBy.OPERATOR:
        person = operators.get(message.sent_by_user_id or 0)
        author, author_key = (person.name, person.id) if person is not None else ("Operator", "")
    iterations, loose = _trace(message)
    metadata = (message.metadata_ if isinstance(message, Message) else message.metadata) or {}
    part = None
    if isinstance(metadata.get("part"), int) and isinstance(metadata.get("parts"), int):
        part = f"{metadata['part']}/{metadata['parts']}"
    return MessageView(
        id=str(message.public_id),
        kind=kind,
        author=author,
        author_key=author_key,
        content=message.content or "",
        type=message.type.value,
        created_at=message.created_at,
        status=_status_of(message),
        buttons=_buttons(message),
        media=_media(message),
        iterations=iterations,
        tool_calls=loose,
        part=part,
        hidden_reason=_HIDDEN_REASONS.get(str(metadata.get("not_sent")), "Hidden from the end user")
        if kind == "hidden"
        else None,
    )


# ------------------------------------------------------------------------------------------------ formatting


class Fmt:
    """Small formatting helpers the thread templates call (as ``fmt``). Times are UTC here; console.js shows
    them in the operator's own time zone."""

    iso = staticmethod(display.iso)
    initials = staticmethod(display.initials)
    hue = staticmethod(display.hue)
    channel = staticmethod(display.channel_label)

    @staticmethod
    def clock(at: datetime) -> str:
        return at.astimezone(UTC).strftime("%H:%M")

    @staticmethod
    def day(at: datetime) -> str:
        at = at.astimezone(UTC)
        return f"{at.strftime('%b')} {at.day}, {at.year}"

    @staticmethod
    def duration(ms: float | None) -> str:
        if ms is None:
            return ""
        return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


FMT = Fmt()


# ------------------------------------------------------------------------------------------------ the thread


PAGE = 30  # messages per page of the transcript
AROUND = 15  # older messages shown above a message opened from a link (?message=)
NEWER_MAX = 200  # newer messages shown below it; past that, a link jumps to the latest
OTHERS = 6  # other threads of the same end user
OPTIONS = 100  # tags offered; users are all listed (a workspace's operators)
MAX_USERS = 1000


@dataclass(frozen=True, slots=True)
class Person:
    """A user of the workspace, as the assignment menu offers them."""

    id: str
    row_id: int
    name: str
    email: str
    me: bool


@dataclass(frozen=True, slots=True)
class TagOption:
    id: str
    name: str
    color: str


@dataclass(frozen=True, slots=True)
class VersionLink:
    """The agent version the thread runs, for the link to it on the agents page."""

    id: str
    number: int
    name: str | None
    mode: str
    agent_name: str


@dataclass(frozen=True, slots=True)
class EndUserPanel:
    id: str
    name: str
    channel: str
    address: str | None
    info: str | None
    metadata: list[tuple[str, str]]
    created_at: datetime | None


@dataclass
class Transcript:
    """The messages shown, oldest first: the newest page, or the page around a linked message (``target``)."""

    messages: list[MessageView]
    has_older: bool
    target: str | None = None
    newer_gap: bool = False  # more messages follow than are shown (a linked message far back)

    @property
    def oldest_id(self) -> str | None:
        return self.messages[0].id if self.messages else None


@dataclass
class ThreadContext:
    """Everything the thread view shows (``thread`` in the templates)."""

    id: str
    row: InboxRow
    version: VersionLink | None
    end_user: EndUserPanel
    others: list[InboxRow]
    people: list[Person]
    tags: list[TagOption]
    transcript: Transcript
    running: bool
    after_seq: int  # the event log's head before anything was read: the live stream resumes after it
    me: str

    @property
    def name(self) -> str:
        return self.end_user.name

    @property
    def channel(self) -> str:
        return self.row.channel.value

    @property
    def assigned_ids(self) -> set[str]:
        return {u.id for u in self.row.assigned_to}

    @property
    def assigned_to_me(self) -> bool:
        return self.me in self.assigned_ids

    @property
    def tag_ids(self) -> set[str]:
        return {t.id for t in self.row.tags}

    @property
    def free_tags(self) -> list[TagOption]:
        """The workspace's tags the thread does not carry (offered by the "add a tag" menu)."""
        return [t for t in self.tags if t.id not in self.tag_ids]

    @property
    def agent_has_it(self) -> bool:
        return self.row.active

    person = staticmethod(display.person)


def end_user_name(display_name: str | None, address: str | None) -> str:
    return (display_name or "").strip() or (address or "").strip() or "Anonymous"


def _metadata(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in list(values.items())[:50]:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        out.append((str(key)[:100], shown if len(shown) <= 500 else shown[:499] + "…"))
    return out


async def operator_names(session: AsyncSession, *, workspace_id: int, me: int) -> list[Person]:
    """Every user of the workspace (up to ``MAX_USERS``), by name."""
    people: list[Person] = []
    after: int | None = None
    while len(people) < MAX_USERS:
        found = await users.list_users(
            session, workspace_id=workspace_id, page=PageRequest(limit=100, order=Order.ASC, after=after)
        )
        for u in found.items:
            name = display.person(u.first_name, u.last_name, u.email)
            people.append(Person(str(u.public_id), u.id, name, u.email, u.id == me))
        if not found.has_more or not found.items:
            break
        after = found.items[-1].id
    return people


def views_of(
    messages: Sequence[Any], *, people: list[Person], agent_name: str, end_user: tuple[str, str] = ("End user", "")
) -> list[MessageView]:
    """The views of stored messages; ``end_user``: the thread's end user's name and id."""
    operators = {p.row_id: p for p in people}
    return [message_view(m, operators=operators, agent_name=agent_name, end_user=end_user) for m in messages]


async def older_page(
    session: AsyncSession, *, workspace_id: int, row: InboxRow, before: str, people: list[Person]
) -> Transcript:
    """The page of messages of the thread (``row``) just before ``before`` (a message id of it), oldest first."""
    thread_id = row.id
    found = await messages.list_messages(
        session, workspace_id=workspace_id, thread_id=thread_id, limit=PAGE, order=Order.DESC, after=None, before=before
    )
    items = list(reversed(found.items))
    views = views_of(items, people=people, agent_name=row.agent.name, end_user=end_user_of(row))
    return Transcript(views, has_older=found.has_more)


def end_user_of(row: InboxRow) -> tuple[str, str]:
    """The thread's end user as its messages name them: their name, and their id (their avatar's colour)."""
    return end_user_name(row.end_user.display_name, row.end_user.address), row.end_user.id


async def _transcript(
    session: AsyncSession, *, workspace_id: int, row: InboxRow, target: str | None, people: list[Person]
) -> Transcript:
    thread_id = row.id

    def views(items: Sequence[Any]) -> list[MessageView]:
        return views_of(items, people=people, agent_name=row.agent.name, end_user=end_user_of(row))

    if target is not None:
        try:
            found = await messages.get_message(
                session, workspace_id=workspace_id, thread_id=thread_id, message_id=target
            )
        except ThreadlineError:
            found = None  # not (or no longer) in this thread: open it as usual
        if found is not None:
            key = str(found.public_id)
            before = await messages.list_messages(
                session,
                workspace_id=workspace_id,
                thread_id=thread_id,
                limit=AROUND,
                order=Order.DESC,
                after=None,
                before=key,
            )
            after = await messages.list_messages(
                session,
                workspace_id=workspace_id,
                thread_id=thread_id,
                limit=NEWER_MAX,
                order=Order.ASC,
                after=key,
                before=None,
            )
            items = [*reversed(before.items), found, *after.items]
            return Transcript(
                views(items),
                has_older=before.has_more,
                target=key,
                newer_gap=after.has_more,
            )
    page = await messages.list_messages(
        session, workspace_id=workspace_id, thread_id=thread_id, limit=PAGE, order=Order.DESC, after=None, before=None
    )
    return Transcript(views(list(reversed(page.items))), has_older=page.has_more)


async def thread_row(session: AsyncSession, *, workspace_id: int, thread_id: str) -> InboxRow:
    """The thread as the inbox shows it (end user, channel, agent, handoff, tags, assignees); 404 when it is not
    a thread of this workspace."""
    rows = await inbox.inbox_rows(session, workspace_id=workspace_id, thread_ids=[thread_id])
    if not rows:
        raise NotFound(f"no thread with id '{thread_id}'")
    return rows[0]


async def load_thread(
    session: AsyncSession,
    *,
    workspace_id: int,
    me: int,
    thread_id: str,
    target: str | None = None,
    with_transcript: bool = True,
) -> ThreadContext:
    """The thread view of ``thread_id`` (404 for anything that is not a thread of this workspace), with the newest
    page of messages or, given ``target`` (a message id), the page around it (none: ``with_transcript=False``,
    for the header, composer and panel alone)."""
    # Read first: whatever is committed from here on reaches the live stream, which resumes after this.
    head = await EventRepository(session, workspace_id).last_seq()
    row = await thread_row(session, workspace_id=workspace_id, thread_id=thread_id)
    canonical = row.id
    people = await operator_names(session, workspace_id=workspace_id, me=me)
    transcript = (
        await _transcript(session, workspace_id=workspace_id, row=row, target=target, people=people)
        if with_transcript
        else Transcript([], has_older=False)
    )
    end_user = await _end_user(session, workspace_id, row)
    others = await inbox.inbox_page(
        session, workspace_id=workspace_id, filters=ThreadFilters(end_user_id=row.end_user.id), limit=OTHERS + 1
    )
    labels = await tags.list_tags(session, workspace_id=workspace_id, page=PageRequest(limit=OPTIONS))
    latest = await runs.list_runs(
        session, workspace_id=workspace_id, thread_id=canonical, page=PageRequest(limit=1, order=Order.DESC)
    )
    return ThreadContext(
        id=canonical,
        row=row,
        version=await version_of(session, workspace_id=workspace_id, thread_id=canonical),
        end_user=end_user,
        others=[r for r in others.rows if r.id != canonical][:OTHERS],
        people=sorted(people, key=lambda p: (not p.me, p.name.lower())),
        tags=sorted(
            (TagOption(str(t.public_id), t.name, t.color.value) for t in labels.items), key=lambda t: t.name.lower()
        ),
        transcript=transcript,
        running=bool(latest.items) and latest.items[0].status is RunStatus.RUNNING,
        after_seq=head,
        me=next((p.id for p in people if p.me), ""),
    )


async def version_of(session: AsyncSession, *, workspace_id: int, thread_id: str) -> VersionLink | None:
    found = await threads.thread_with_agent(session, workspace_id=workspace_id, thread_id=thread_id)
    if found is None or found.row.version_public_id is None:
        return None
    r = found.row
    mode = r.version_mode.value if hasattr(r.version_mode, "value") else str(r.version_mode)
    return VersionLink(str(r.version_public_id), r.version_number, r.version_name, mode, r.agent_name)


async def _end_user(session: AsyncSession, workspace_id: int, row: InboxRow) -> EndUserPanel:
    name = end_user_name(row.end_user.display_name, row.end_user.address)
    try:
        found = await end_users.get_end_user(session, workspace_id=workspace_id, end_user_id=row.end_user.id)
    except ThreadlineError:  # being erased
        return EndUserPanel(row.end_user.id, name, row.end_user.channel.value, row.end_user.address, None, [], None)
    return EndUserPanel(
        id=row.end_user.id,
        name=name,
        channel=found.channel.value,
        address=found.address,
        info=found.info,
        metadata=_metadata(found.metadata_ or {}),
        created_at=found.created_at,
    )
