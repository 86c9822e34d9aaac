"""The SQL of search: a match query per database, keyset pages on the message's place (newest first by default).

The place is the key each database walks cheaply in order: SQLite, the message's row id, which is also the FTS5
table's row id (FTS5 reads a word's row ids in either direction and seeks to a cursor); PostgreSQL, the message's
``number`` in its workspace, through the unique index (workspace_id, number), so a walk reads only this
workspace's messages.

On PostgreSQL a page of content matches is one statement of two parts, run lazily in order. First, the newest
``WINDOW`` messages of the workspace past the cursor, walked in order, each checked against its stored tsvector:
a word in one message of a few hundred fills the page there. Only when that part finds fewer than a page does
the second part run: the GIN index's matches beyond the window, sorted (``number + 0`` keeps the planner from
walking the whole workspace in order instead). So a common word never reads all its matches, a rare one never
walks all the messages, and neither depends on the planner guessing how rare the word is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, column, func, insert, literal_column, select, table, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import PageRequest
from threadline.kit.repository import WorkspaceRepository
from threadline.models import EndUser, Message, Thread

WINDOW = 4_000
_COLUMNS = tuple(Message.__table__.c)
# Migration 0014's search structures, which no model maps. SQLite: FTS5 tables, whose row id is the indexed row's
# id. PostgreSQL: stored tsvector columns (the 'simple' configuration, punctuation turned into spaces first).
_MESSAGES_FTS = table("messages_fts", column("rowid"))
_END_USERS_FTS = table("end_users_fts", column("rowid"))
_MESSAGE_VECTOR: Any = literal_column("messages.search_vector")
_END_USER_VECTOR: Any = literal_column("end_users.search_vector")
_CONFIG = text("'simple'::regconfig")


class SearchRepository(WorkspaceRepository):
    @property
    def sqlite(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    @property
    def key(self) -> Any:
        """The column results are ordered and paged by (see the module's docstring)."""
        return Message.id if self.sqlite else Message.number

    async def place(self, message_id: str) -> int | None:
        """The key of a message of this workspace, named by its public id; None when there is none."""
        uid = parse_uuid(message_id)
        if uid is None:
            return None
        stmt = select(self.key).where(Message.workspace_id == self.workspace_id, Message.public_id == uid)
        found: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def by_content(self, words: list[str], page: PageRequest) -> list[Any]:
        """The workspace's messages whose content holds every word: up to ``page.limit + 1`` rows (the message's
        columns and ``thread_public_id``), nearest the cursor first."""
        if self.sqlite:
            fts = _MESSAGES_FTS
            stmt = (
                select(*_COLUMNS)
                .select_from(fts)
                .join(Message, Message.id == fts.c.rowid)
                .where(column("messages_fts").op("MATCH")(_fts_query(words)), Message.workspace_id == self.workspace_id)
            )
            return await self._page(stmt, fts.c.rowid, page)
        matches = select(*_COLUMNS).where(
            Message.workspace_id == self.workspace_id, _MESSAGE_VECTOR.op("@@")(_tsquery(words))
        )
        return await self._windowed(matches, page)

    async def by_end_user(self, words: list[str], page: PageRequest) -> list[Any]:
        """The newest message of each thread whose end user's name or address holds every word (end users being
        erased left out), as ``by_content``."""
        if self.sqlite:
            matching = select(_END_USERS_FTS.c.rowid).where(column("end_users_fts").op("MATCH")(_fts_query(words)))
            people = EndUser.id.in_(matching)
        else:
            people = _END_USER_VECTOR.op("@@")(_tsquery(words))
        stmt = (
            select(*_COLUMNS)
            .select_from(EndUser)
            .join(Thread, Thread.end_user_id == EndUser.id)
            .join(Message, and_(Message.thread_id == Thread.id, Message.seq == Thread.last_seq))
            .where(
                EndUser.workspace_id == self.workspace_id,
                EndUser.erased_at.is_(None),
                people,
                Thread.workspace_id == self.workspace_id,
            )
        )
        return await self._page(stmt, self.key, page)

    async def _page(self, stmt: Select[Any], key: Any, page: PageRequest) -> list[Any]:
        if page.after is not None:
            stmt = stmt.where(key > page.after)
        if page.before is not None:
            stmt = stmt.where(key < page.before)
        ascending = _ascending(page)
        return await self._with_threads(stmt.order_by(key.asc() if ascending else key.desc()), page)

    async def _windowed(self, matches: Select[Any], page: PageRequest) -> list[Any]:
        """PostgreSQL: the window walked in order, then the index's matches beyond it (the module's docstring).
        The window's size and the limits are written into the SQL, not sent as parameters: the plan PostgreSQL
        keeps for a prepared statement (a generic plan) must know them, or it reads every match of the word."""
        number = Message.number
        unindexed = Message.number + literal_column("0")
        window: Any = literal_column(str(WINDOW))
        limit: Any = literal_column(str(page.limit + 1))
        ascending = _ascending(page)
        near, far = matches, matches
        if page.after is not None:
            near, far = near.where(number > page.after), far.where(unindexed > page.after)
        if page.before is not None:
            near, far = near.where(number < page.before), far.where(unindexed < page.before)
        if ascending:
            start = page.after if page.after is not None else 0
            near = near.where(number <= start + window).order_by(number.asc())
            far = far.where(unindexed > start + window).order_by(unindexed.asc())
        else:
            newest = select(func.max(Message.number)).where(Message.workspace_id == self.workspace_id)
            start = page.before if page.before is not None else newest.scalar_subquery() + literal_column("1")
            near = near.where(number >= start - window).order_by(number.desc())
            far = far.where(unindexed < start - window).order_by(unindexed.desc())
        both = union_all(near.limit(limit), far.limit(limit)).limit(limit).subquery()
        return await self._with_threads(select(both), page)

    async def _with_threads(self, stmt: Select[Any], page: PageRequest) -> list[Any]:
        """The page's rows (``stmt`` limited to a page and one), each with its thread's public id, read after the
        page is cut so that only its rows are joined."""
        found = stmt.limit(page.limit + 1).subquery()
        order = found.c[self.key.name]
        outer = (
            select(found, Thread.public_id.label("thread_public_id"))
            .join(Thread, Thread.id == found.c.thread_id)
            .order_by(order.asc() if _ascending(page) else order.desc())
        )
        return list((await self.session.execute(outer)).all())


class SearchIndex:
    """The full-text index as a whole, across workspaces (no query here reads a workspace's rows)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def compact(self) -> None:
        """SQLite: rewrite the FTS5 indexes into one segment each. A deleted row's words stay in the segments that
        held them (behind a delete marker) until those are merged; this merges them all now. PostgreSQL: nothing
        (a deleted row's tsvector is in the row itself)."""
        if self.session.get_bind().dialect.name != "sqlite":
            return
        for name in ("messages_fts", "end_users_fts"):
            fts = table(name, column(name))
            await self.session.execute(insert(fts).values({name: "optimize"}))


def _ascending(page: PageRequest) -> bool:
    """Whether the page is read oldest first (then reversed if it is to be shown newest first): ``after`` pages
    start next to their cursor, as in kit.pagination."""
    return page.after is not None or (page.before is None and page.order.value == "asc")


def _fts_query(words: list[str]) -> str:
    """An FTS5 query holding every word, each a quoted string: no word is read as an operator (NEAR, AND, *)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def _tsquery(words: list[str]) -> Any:
    return func.plainto_tsquery(_CONFIG, " ".join(words))
