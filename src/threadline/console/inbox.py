"""The inbox (console side): threads by last activity with their views, counts and filters, "load more" pages, and
search results, as a whole page or as the pieces htmx swaps in.

One URL, ``/console/inbox?view=&agent=&channel=&tag=&blocked=&q=``, holds the whole state (reload and links keep
it). What it answers depends on who asks:

- a browser (no ``HX-Request``), or htmx restoring history: the whole page;
- htmx targeting ``#thread-list`` (a view, a filter, the search box): the list, plus out-of-band the sidebar's
  views, the list's head and the filter bar's hidden view (and the search box, unless the search box asked), with
  ``HX-Push-Url`` (``HX-Replace-Url`` while typing a search) set to the canonical URL;
- the same with ``live=1`` (the live refresh on ``sse:inbox``, see console.live): the first ``limit`` rows again
  (console.js asks for as many as the operator has loaded, up to 200) and the counts, nothing pushed;
- htmx targeting ``#inbox-more`` (the "load more" row) with ``before=<cursor>``: the next rows and a new
  "load more" row, appended in its place.

The console reads through services only (threads.inbox, search, agents, tags): no SQL here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from threadline.agents import service as agents
from threadline.console import display
from threadline.console.deps import OperatorDep
from threadline.console.service import Operator
from threadline.console.web import PREFIX, is_htmx, page
from threadline.errors import ValidationFailed
from threadline.events.repository import EventRepository
from threadline.kit.clock import utcnow
from threadline.kit.pagination import Order, PageRequest
from threadline.models.enums import ChannelType, MessageType, Role, SentBy
from threadline.search import service as search
from threadline.tags import service as tags
from threadline.threads import inbox
from threadline.threads.schemas import InboxPage, InboxRow, InboxView, ThreadCounts, ThreadFilters
from threadline.web.deps import SessionDep

router = APIRouter()

INBOX = f"{PREFIX}/inbox"
PAGE = 50  # rows per page of the inbox
MAX_ROWS = 200  # rows a live refresh may ask for (as many as the operator has loaded)
SEARCH_PAGE = 25
OPTIONS = 100  # agents and tags offered by the filter bar
LIST_TARGET = "thread-list"
MORE_TARGET = "inbox-more"
SEARCH_FORM = "inbox-search"

VIEWS: tuple[tuple[InboxView, str, str], ...] = (
    (InboxView.NEEDS_HUMAN, "Needs a human", "hand"),
    (InboxView.MINE, "Mine", "user"),
    (InboxView.UNASSIGNED, "Unassigned", "user-off"),
    (InboxView.ALL, "All", "stack"),
)
VIEW_LABELS = {view: label for view, label, _ in VIEWS}
BLOCKED = {"yes": True, "no": False}


# ------------------------------------------------------------------------------------------------ the query


@dataclass(frozen=True, slots=True)
class InboxQuery:
    """What the inbox shows: a view, filters, a search, and where the page starts. ``url()`` spells it back."""

    view: InboxView = InboxView.ALL
    agent: str | None = None
    channel: ChannelType | None = None
    tag: str | None = None
    blocked: bool | None = None
    q: str | None = None
    before: str | None = None
    limit: int = PAGE

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.agent, self.channel, self.tag, self.blocked))

    @property
    def searching(self) -> bool:
        return self.q is not None

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query string's fields (defaults and empty ones left out), with ``changes`` applied."""
        if "view" in changes:
            changes["view"] = InboxView(changes["view"])
        q = replace(self, **changes) if changes else self
        pairs: list[tuple[str, str]] = []
        if q.view is not InboxView.ALL:
            pairs.append(("view", q.view.value))
        for name, value in (("agent", q.agent), ("channel", q.channel), ("tag", q.tag), ("q", q.q)):
            if value is not None:
                pairs.append((name, str(value)))
        if q.blocked is not None:
            pairs.append(("blocked", "yes" if q.blocked else "no"))
        if q.before is not None:
            pairs.append(("before", q.before))
        if q.limit != PAGE:
            pairs.append(("limit", str(q.limit)))
        return pairs

    def url(self, **changes: Any) -> str:
        """This query's inbox URL (``changes`` applied): what the address bar shows and links point at."""
        pairs = self.params(**changes)
        return f"{INBOX}?{urlencode(pairs)}" if pairs else INBOX

    def link(self, **changes: Any) -> str:
        """The canonical URL of this query (``changes`` applied): from the first page, at the usual page size."""
        return self.url(**{"before": None, "limit": PAGE, **changes})

    def more(self, before: str) -> str:
        """The URL of the rows after ``before``: this query's, at its page size (at most the usual one)."""
        return self.url(before=before, limit=min(self.limit, PAGE))

    def filters(self, operator: Operator, *, for_counts: bool = False) -> ThreadFilters:
        """The threads' filters: "mine" is the operator's threads; the counts take the operator too (for their
        "mine") but no view."""
        mine = self.view is InboxView.MINE or for_counts
        return ThreadFilters(
            agent_id=self.agent,
            blocked=self.blocked,
            tag_id=self.tag,
            channel=self.channel,
            view=InboxView.ALL if for_counts else self.view,
            assigned_user_id=str(operator.user_public_id) if mine else None,
        )


def _text(value: str, *, param: str, max_chars: int = 64) -> str | None:
    value = value.strip()
    if len(value) > max_chars:
        raise ValidationFailed(f"{param}: at most {max_chars} characters", param=param)
    return value or None


def parse_query(
    *,
    view: str = "",
    agent: str = "",
    channel: str = "",
    tag: str = "",
    blocked: str = "",
    q: str = "",
    before: str = "",
    limit: int = PAGE,
) -> InboxQuery:
    """The inbox query from its URL's fields (an empty field means "any"); a value it cannot take is a 422 naming
    the field."""
    views = {v.value: v for v in InboxView}
    if view.strip() and view.strip() not in views:
        raise ValidationFailed(f"view: one of {', '.join(views)}", param="view")
    channels = {c.value: c for c in ChannelType}
    if channel.strip() and channel.strip() not in channels:
        raise ValidationFailed(f"channel: one of {', '.join(channels)}", param="channel")
    if blocked.strip() and blocked.strip() not in BLOCKED:
        raise ValidationFailed("blocked: yes or no", param="blocked")
    if not 1 <= limit <= MAX_ROWS:
        raise ValidationFailed(f"limit: from 1 to {MAX_ROWS}", param="limit")
    return InboxQuery(
        view=views.get(view.strip(), InboxView.ALL),
        agent=_text(agent, param="agent"),
        channel=channels.get(channel.strip()),
        tag=_text(tag, param="tag"),
        blocked=BLOCKED.get(blocked.strip()),
        q=_text(q, param="q", max_chars=search.MAX_QUERY_CHARS),
        before=_text(before, param="before"),
        limit=limit,
    )


def query_of(request: Request) -> InboxQuery:
    """The inbox query in ``request``'s URL (for a page that shows the inbox beside something else, such as an
    open thread); fields it cannot take are ignored there."""
    get = request.query_params.get
    try:
        return parse_query(
            view=get("view", ""),
            agent=get("agent", ""),
            channel=get("channel", ""),
            tag=get("tag", ""),
            blocked=get("blocked", ""),
            q=get("q", ""),
        )
    except ValidationFailed:
        return InboxQuery()


# ------------------------------------------------------------------------------------------------ what is shown


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    hit: bool


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message a search found, as the results list shows it: the excerpt around the match (the matching words
    marked), who wrote it, and its thread's row (end user, channel)."""

    message_id: str
    thread_id: str
    role: Role
    sent_by: SentBy
    type: MessageType
    created_at: datetime
    match: str
    segments: list[Segment]
    thread: InboxRow | None

    @property
    def href(self) -> str:
        return f"{PREFIX}/threads/{self.thread_id}?{urlencode({'message': self.message_id})}"


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    label: str


@dataclass
class InboxContext:
    """Everything the inbox's templates read (as ``inbox``). ``page``: the threads (None while searching);
    ``hits``/``hits_more``: the search results and the cursor of the next page; ``agents``/``tags``: the filter
    bar's choices (None in a partial answer, which does not redraw the bar)."""

    query: InboxQuery
    counts: ThreadCounts
    page: InboxPage | None = None
    hits: list[SearchHit] | None = None
    hits_more: str | None = None
    search_error: str | None = None
    agents: list[Option] | None = None
    tags: list[Option] | None = None
    now: datetime = field(default_factory=utcnow)
    # The event log's head before anything was read: the live stream starts after it, so a change committed
    # while the page was drawn (marking the open thread read, a message) still refreshes it.
    live_after: int | None = None

    @property
    def title(self) -> str:
        return "Search" if self.query.searching else VIEW_LABELS[self.query.view]

    def count(self, view: InboxView | str) -> int | None:
        value: int | None = getattr(self.counts, InboxView(view).value)
        return value

    def when(self, at: datetime) -> str:
        """A short time: 14:05 today, Dec 7 this year, Dec 7, 2023 before (UTC; console.js shows local time)."""
        at = at.astimezone(UTC)
        if at.date() == self.now.date():
            return at.strftime("%H:%M")
        if at.year == self.now.year:
            return f"{at.strftime('%b')} {at.day}"
        return f"{at.strftime('%b')} {at.day}, {at.year}"

    iso = staticmethod(display.iso)
    initials = staticmethod(display.initials)
    hue = staticmethod(display.hue)
    channel_label = staticmethod(display.channel_label)
    person = staticmethod(display.person)

    @staticmethod
    def who(sent_by: SentBy, role: Role) -> str:
        """The label before a message's excerpt ("" for the end user's own words)."""
        if role is Role.HIDDEN:
            return "Hidden"
        if role is Role.TOOL:
            return "Tool"
        return {SentBy.AGENT: "Agent", SentBy.OPERATOR: "Operator", SentBy.SYSTEM: "System"}.get(sent_by, "")

    @staticmethod
    def unread(count: int) -> str:
        return "99+" if count >= inbox.UNREAD_CAP else str(count)


async def inbox_context(
    session: AsyncSession, operator: Operator, query: InboxQuery | None = None, *, with_options: bool = True
) -> InboxContext:
    """What the inbox shows for ``query`` (the first page of all threads by default): its threads or search
    results, the views' counts, and (``with_options``) the filter bar's agents and tags. Also for pages that show
    the inbox beside something else (an open thread): render them with ``inbox=<this>``."""
    query = query or InboxQuery()
    ws = operator.workspace_id
    head = await EventRepository(session, ws).last_seq()
    counts = await inbox.counts(session, workspace_id=ws, filters=query.filters(operator, for_counts=True))
    context = InboxContext(query=query, counts=counts, live_after=head)
    if query.searching:
        await _search(session, operator, context)
    else:
        context.page = await inbox.inbox_page(
            session, workspace_id=ws, filters=query.filters(operator), limit=query.limit, before=query.before
        )
    if with_options:
        first = PageRequest(limit=OPTIONS, order=Order.ASC)
        found = await agents.list_agents(session, workspace_id=ws, page=first)
        context.agents = sorted(
            (Option(str(a.agent.public_id), a.agent.name) for a in found.items), key=lambda o: o.label.lower()
        )
        labels = await tags.list_tags(session, workspace_id=ws, page=first)
        context.tags = sorted((Option(str(t.public_id), t.name) for t in labels.items), key=lambda o: o.label.lower())
    return context


async def _search(session: AsyncSession, operator: Operator, context: InboxContext) -> None:
    query = context.query
    assert query.q is not None
    try:
        words = search.words_of(query.q)
        found = await search.search_messages(
            session,
            workspace_id=operator.workspace_id,
            q=query.q,
            limit=min(query.limit, SEARCH_PAGE),
            before=query.before,
        )
    except ValidationFailed as exc:
        context.hits, context.search_error = [], exc.message.removeprefix("q: ")
        return
    thread_ids = list(dict.fromkeys(str(f.thread_id) for f in found.items))
    rows = await inbox.inbox_rows(session, workspace_id=operator.workspace_id, thread_ids=thread_ids)
    by_id = {r.id: r for r in rows}
    context.hits = [
        SearchHit(
            message_id=str(f.row.public_id),
            thread_id=str(f.thread_id),
            role=Role(f.row.role),
            sent_by=SentBy(f.row.sent_by),
            type=MessageType(f.row.type),
            created_at=f.row.created_at,
            match=f.match,
            segments=highlight(f.row.content or "", words),
            thread=by_id.get(str(f.thread_id)),
        )
        for f in found.items
    ]
    context.hits_more = context.hits[-1].message_id if found.has_more and context.hits else None


EXCERPT_CHARS = 160


def highlight(content: str, words: list[str], width: int = EXCERPT_CHARS) -> list[Segment]:
    """``content`` on one line, cut to about ``width`` characters around the first of ``words`` found (whole
    words, any case), as segments whose ``hit`` marks the words. Text only: the template escapes it."""
    line = " ".join(content.split())
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE) if alternatives else None
    first = pattern.search(line) if pattern else None
    start = 0
    if first is not None and first.start() > width // 3:
        start = line.rfind(" ", 0, first.start() - width // 4) + 1
    cut = line[start : start + width]
    if start + width < len(line):
        cut = cut[: cut.rfind(" ")] if " " in cut[width // 2 :] else cut
    text = ("…" if start else "") + cut + ("…" if start + len(cut) < len(line) else "")
    if pattern is None:
        return [Segment(text, False)]
    segments: list[Segment] = []
    at = 0
    for m in pattern.finditer(text):
        if m.start() > at:
            segments.append(Segment(text[at : m.start()], False))
        segments.append(Segment(m.group(0), True))
        at = m.end()
    if at < len(text):
        segments.append(Segment(text[at:], False))
    return segments


# ------------------------------------------------------------------------------------------------ the route


def _target(request: Request) -> str | None:
    if not is_htmx(request) or request.headers.get("hx-history-restore-request") == "true":
        return None
    return request.headers.get("hx-target")


@router.get("/inbox")
async def inbox_view(
    request: Request,
    session: SessionDep,
    operator: OperatorDep,
    view: Annotated[str, Query(max_length=20)] = "",
    agent: Annotated[str, Query(max_length=100)] = "",
    channel: Annotated[str, Query(max_length=20)] = "",
    tag: Annotated[str, Query(max_length=100)] = "",
    blocked: Annotated[str, Query(max_length=10)] = "",
    q: Annotated[str, Query(max_length=search.MAX_QUERY_CHARS)] = "",
    before: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = PAGE,
    live: Annotated[bool, Query()] = False,
) -> Response:
    query = parse_query(
        view=view, agent=agent, channel=channel, tag=tag, blocked=blocked, q=q, before=before, limit=limit
    )
    target = _target(request)
    if target == MORE_TARGET and query.before is not None:
        context = await inbox_context(session, operator, query, with_options=False)
        return page("_inbox_more.html", operator=operator, inbox=context)
    if target == LIST_TARGET:
        context = await inbox_context(session, operator, query, with_options=False)
        searching_by_hand = request.headers.get("hx-trigger") == SEARCH_FORM
        headers = {}
        if not live:
            headers["HX-Replace-Url" if searching_by_hand else "HX-Push-Url"] = query.link()
        return page(
            "_inbox_list_answer.html",
            operator=operator,
            inbox=context,
            live=live,
            redraw_search=not live and not searching_by_hand,
            headers=headers,
        )
    context = await inbox_context(session, operator, query)
    # A search without a word is bad input: the page says why (a 422); htmx gets the same words with a 200, so
    # that it swaps them in.
    status = 422 if context.search_error else 200
    return page("inbox.html", status_code=status, operator=operator, section="inbox", inbox=context)
