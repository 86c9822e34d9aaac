"""Keyset pagination with chronological cursors.

The rule (docs/api.md): ``after=X`` selects items created after X and ``before=X`` items created before
X, whatever ``order`` says; ``order`` only sorts the page. The page is the ``limit`` items nearest the
cursor: the first ones after ``after``, the last ones before ``before``; with no cursor, the oldest
(``order=asc``) or the newest (``order=desc``). ``has_more`` says whether more items lie beyond the
page on the far side from the cursor (with both cursors: between the page and ``before``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    order: Order = Order.ASC
    # Keys, or scalar subqueries that yield them (so a page can be one statement).
    after: Any = None
    before: Any = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


async def keyset_page(
    session: AsyncSession,
    stmt: Select[Any],
    key: Any,
    page: PageRequest,
    *,
    rows: bool = False,
) -> Page[Any]:
    """Run ``stmt`` narrowed to the page around the cursors, ``key`` being the column pages walk.

    ``rows=True`` returns the result rows as they are (for Core selects of columns) instead of the
    first column of each (ORM entities)."""
    if page.after is not None:
        stmt = stmt.where(key > page.after)
    if page.before is not None:
        stmt = stmt.where(key < page.before)
    ascending = page.after is not None or (page.before is None and page.order is Order.ASC)
    stmt = stmt.order_by(key.asc() if ascending else key.desc()).limit(page.limit + 1)
    result = await session.execute(stmt)
    items = list(result.all() if rows else result.scalars().all())
    has_more = len(items) > page.limit
    items = items[: page.limit]
    if ascending != (page.order is Order.ASC):
        items.reverse()
    return Page(items=items, has_more=has_more)
