"""Search a workspace's messages: every word of the query in a message's content, or in the name or address of
its thread's end user (then the result is that thread's newest message).

A query is its words: runs of letters and digits (as SQLite's unicode61 tokenizer and PostgreSQL's parser, after
punctuation is turned into spaces, read text); everything else (quotes, ``*``, parentheses, ``NEAR``'s syntax)
only separates words, so no query is an operator. Every word must match, case-insensitively, as a whole word.
Results come newest first by default, in keyset pages on the message (``after`` / ``before`` take message ids).
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import InvalidRequest, ValidationFailed
from threadline.kit.pagination import Order, Page, PageRequest
from threadline.search.repository import SearchIndex, SearchRepository
from threadline.search.schemas import Found

MAX_QUERY_CHARS = 200
MAX_WORDS = 16
_WORD = re.compile(r"[^\W_]+")


def words_of(q: str) -> list[str]:
    """The words of a query (a 422 naming ``q`` when it has none, or too many)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(q)))
    if not words:
        raise ValidationFailed("q: give at least one word (letters or digits) to search for", param="q")
    if len(words) > MAX_WORDS:
        raise ValidationFailed(f"q: at most {MAX_WORDS} different words", param="q")
    return words


async def search_messages(
    session: AsyncSession,
    *,
    workspace_id: int,
    q: str,
    limit: int,
    order: Order = Order.DESC,
    after: str | None = None,
    before: str | None = None,
) -> Page[Found]:
    """A page of the messages found for ``q``. ``after`` / ``before`` are message ids of this workspace (a 400
    naming the parameter otherwise): results created after / before that message. Two statements (plus one per
    cursor)."""
    words = words_of(q)
    repo = SearchRepository(session, workspace_id)
    page = PageRequest(
        limit=limit,
        order=order,
        after=await _place(repo, after, "after"),
        before=await _place(repo, before, "before"),
    )
    key = repo.key.name  # what the database orders by: both lists are merged on it
    found: dict[int, Found] = {}
    for row in await repo.by_content(words, page):
        found[row.id] = Found(row, row.thread_public_id, "content")
    for row in await repo.by_end_user(words, page):
        found.setdefault(row.id, Found(row, row.thread_public_id, "end_user"))
    ascending = page.after is not None or (page.before is None and order is Order.ASC)
    items = sorted(found.values(), key=lambda f: getattr(f.row, key), reverse=not ascending)
    has_more = len(items) > limit
    items = items[:limit]
    if ascending != (order is Order.ASC):
        items.reverse()
    return Page(items=items, has_more=has_more)


async def _place(repo: SearchRepository, message_id: str | None, param: str) -> int | None:
    if message_id is None:
        return None
    place = await repo.place(message_id)
    if place is None:
        raise InvalidRequest(f"{param}: no message with id '{message_id}' in this workspace", param=param)
    return place


async def compact_index(session: AsyncSession) -> None:
    """Drop what was deleted from the full-text index for good (SQLite: its words stay in the index's segments
    until they are merged, so an erasure calls this when it is done; it rewrites the index, seconds for a million
    messages, holding the write lock). Nothing to do on PostgreSQL."""
    await SearchIndex(session).compact()
