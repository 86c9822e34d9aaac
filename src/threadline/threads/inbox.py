"""The inbox: threads by last activity, its views (needs a human, mine, unassigned, all) and their counts, and the
rows a page shows. The console and ``GET /v1/threads?order_by=last_message_at`` read through here.

The order is a thread's last activity, newest first: its last message's time, or while it has no message its
creation time; ties are broken by the thread's ``number``. A thread only ever moves up (a message never dates
it earlier), so a client walking the pages with ``before=<last_cursor>`` never sees a thread twice nor misses
one that stayed where it was; a thread that moved up while it walked is above its cursor (it shows on the
first page again). Cursors are places in the order (opaque strings), not thread ids: a thread's place changes.

"Needs a human": the thread was handed to a human (``active`` false) and the conversation's newest message (the
end user's, the agent's or an operator's words; not system notes, tool results or hidden messages) is not an
operator's. So a thread enters the view at the handoff, leaves it when an operator answers, and comes back
when the end user writes again while a human has it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import InvalidRequest, ValidationFailed
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Order, Page, PageRequest
from threadline.models import Thread
from threadline.models.enums import ChannelType
from threadline.threads.repository import UNREAD_CAP, InboxRepository
from threadline.threads.schemas import (
    ActivityKey,
    InboxAgent,
    InboxEndUser,
    InboxMessage,
    InboxPage,
    InboxRow,
    InboxTag,
    InboxUser,
    InboxView,
    ThreadCounts,
    ThreadFilters,
)

__all__ = ["UNREAD_CAP", "counts", "decode_cursor", "encode_cursor", "inbox_page", "inbox_rows", "threads_by_activity"]

EXCERPT_CHARS = 120
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
_CURSOR_TEXT = re.compile(r"^(-?\d{1,18})\.(\d{1,19})$")
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def encode_cursor(key: ActivityKey) -> str:
    """A place in the inbox order as an opaque, URL-safe string."""
    micros = (key.at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}.{key.number}".encode()).decode().rstrip("=")


def decode_cursor(raw: str, *, param: str) -> ActivityKey:
    """The place ``encode_cursor`` gave; anything else is a 400 naming ``param``."""
    problem = InvalidRequest(
        f"{param}: not a cursor of this list (with order_by=last_message_at, pass first_cursor or last_cursor)",
        param=param,
    )
    if not _CURSOR.match(raw):
        raise problem
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problem from None
    found = _CURSOR_TEXT.match(text)
    if found is None:
        raise problem
    micros, number = int(found.group(1)), int(found.group(2))
    if not (_MIN_US <= micros <= _MAX_US and 0 < number < 2**63):
        raise problem
    return ActivityKey(_EPOCH + timedelta(microseconds=micros), number)


def _activity_of(thread: Thread) -> datetime:
    return thread.last_message_at or thread.created_at


def check_view(filters: ThreadFilters) -> None:
    if filters.view is InboxView.MINE and filters.assigned_user_id is None:
        raise ValidationFailed("view=mine needs assigned_user_id: the user whose threads these are", param="view")


def _page_request(limit: int, order: Order, after: str | None, before: str | None) -> PageRequest:
    return PageRequest(
        limit=limit,
        order=order,
        after=decode_cursor(after, param="after") if after is not None else None,
        before=decode_cursor(before, param="before") if before is not None else None,
    )


async def threads_by_activity(
    session: AsyncSession,
    *,
    workspace_id: int,
    filters: ThreadFilters,
    limit: int,
    order: Order = Order.DESC,
    after: str | None = None,
    before: str | None = None,
) -> tuple[Page[Thread], str | None, str | None]:
    """A page of threads (tags and assignees loaded) in the inbox order, with the cursors of its first and last
    thread. ``after``/``before`` are cursors; a bad one is a 400 naming it."""
    check_view(filters)
    request = _page_request(limit, order, after, before)
    page = await InboxRepository(session, workspace_id).threads_by_activity(request, filters)
    return page, *_ends([ActivityKey(_activity_of(t), t.number) for t in page.items])


def _ends(keys: list[ActivityKey]) -> tuple[str | None, str | None]:
    if not keys:
        return None, None
    return encode_cursor(keys[0]), encode_cursor(keys[-1])


async def inbox_page(
    session: AsyncSession,
    *,
    workspace_id: int,
    filters: ThreadFilters,
    limit: int = 50,
    order: Order = Order.DESC,
    after: str | None = None,
    before: str | None = None,
) -> InboxPage:
    """A page of the inbox as rows (``inbox_rows``): the view and filters in ``filters`` (``mine``: the threads
    of ``filters.assigned_user_id``), newest first by default; walk on with ``before=<last_cursor>``. Four
    statements whatever the page size."""
    check_view(filters)
    request = _page_request(limit, order, after, before)
    page = await InboxRepository(session, workspace_id).keys_by_activity(request, filters)
    rows = await inbox_rows(session, workspace_id=workspace_id, thread_ids=[str(r.public_id) for r in page.items])
    first, last = _ends([ActivityKey(r.activity, r.number) for r in page.items])
    return InboxPage(rows=rows, has_more=page.has_more, first_cursor=first, last_cursor=last)


async def inbox_rows(session: AsyncSession, *, workspace_id: int, thread_ids: list[str]) -> list[InboxRow]:
    """The inbox rows of these threads (their ids), in the order given: what a page shows, or one thread's row
    again when an event says it changed. Ids that name no thread of this workspace are left out. Three
    statements whatever their number."""
    uids = [u for u in (parse_uuid(t) for t in thread_ids) if u is not None]
    threads, tags, users = await InboxRepository(session, workspace_id).rows(uids)
    tags_of: dict[int, list[InboxTag]] = defaultdict(list)
    for t in tags:
        tags_of[t.thread_id].append(InboxTag(id=str(t.public_id), name=t.name, color=t.color))
    users_of: dict[int, list[InboxUser]] = defaultdict(list)
    for u in users:
        users_of[u.thread_id].append(
            InboxUser(id=str(u.public_id), email=u.email, first_name=u.first_name, last_name=u.last_name)
        )
    by_id = {r.public_id: _row(r, tags_of[r.id], users_of[r.id]) for r in threads}
    return [by_id[u] for u in uids if u in by_id]


def _row(r: Any, tags: list[InboxTag], users: list[InboxUser]) -> InboxRow:
    last = None
    if r.last_id is not None:
        last = InboxMessage(
            id=str(r.last_id),
            role=r.last_role,
            sent_by=r.last_sent_by,
            type=r.last_type,
            excerpt=excerpt(r.last_content or ""),
            created_at=r.last_created_at,
        )
    needs = bool(r.needs_human)
    return InboxRow(
        id=str(r.public_id),
        number=r.number,
        channel=ChannelType(r.channel) if r.channel is not None else ChannelType.API,
        agent=InboxAgent(id=str(r.agent_id), name=r.agent_name),
        end_user=InboxEndUser(
            id=str(r.end_user_id), display_name=r.display_name, channel=r.end_user_channel, address=r.address
        ),
        last_message=last,
        last_activity_at=r.activity,
        unread_count=int(r.unread),
        active=bool(r.active),
        blocked=bool(r.blocked),
        needs_human=needs,
        handoff="agent" if r.active else "needs_human" if needs else "human",
        assigned_to=users,
        tags=tags,
        cursor=encode_cursor(ActivityKey(r.activity, r.number)),
    )


def excerpt(content: str, limit: int = EXCERPT_CHARS) -> str:
    """``content`` on one line (runs of white space as one space), cut to ``limit`` characters with an ellipsis."""
    line = " ".join(content.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


async def counts(session: AsyncSession, *, workspace_id: int, filters: ThreadFilters) -> ThreadCounts:
    """How many threads each view holds under ``filters`` (their ``view`` aside): ``mine`` counts the threads of
    ``filters.assigned_user_id`` (None without it). One statement."""
    found = await InboxRepository(session, workspace_id).counts(filters)
    return ThreadCounts(**found)
