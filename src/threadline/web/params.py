"""Query parameters shared by every /v1 list, and the list envelope built from a page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request

from threadline.errors import ValidationFailed
from threadline.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Order, Page, PageRequest
from threadline.kit.repository import WorkspaceRepository
from threadline.kit.schemas import IdRef

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListQuery:
    limit: int
    order: Order
    after: str | None
    before: str | None

    async def resolve(self, repo: WorkspaceRepository, model: Any, *, label: str) -> PageRequest:
        """Turn the ``after``/``before`` ids into keys (400 when they are not in this list)."""
        return PageRequest(
            limit=self.limit,
            order=self.order,
            after=await repo.cursor_key(model, self.after, param="after", label=label),
            before=await repo.cursor_key(model, self.before, param="before", label=label),
        )


async def list_query(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1 to 100.")] = DEFAULT_LIMIT,
    order: Annotated[Order, Query(description="Sorts the page; does not change what after/before mean.")] = Order.ASC,
    # An id that names no item of the list is a 400 naming the parameter (resolve).
    after: Annotated[IdRef | None, Query(description="Only items created after the item with this id.")] = None,
    before: Annotated[IdRef | None, Query(description="Only items created before the item with this id.")] = None,
) -> ListQuery:
    return ListQuery(limit=limit, order=order, after=after, before=before)


ListQueryDep = Annotated[ListQuery, Depends(list_query)]


async def single_valued_query(request: Request) -> None:
    """Every /v1 query parameter takes one value: a repeated one is a 422 naming it (not "the last one wins",
    which would quietly drop what the client meant by the others)."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise ValidationFailed(f"{name}: given more than once; it takes one value", param=name)
        seen.add(name)


def list_envelope(page: Page[T], convert: Callable[[T], Any]) -> dict[str, Any]:
    data = [convert(item) for item in page.items]
    return {
        "data": data,
        "first_id": _id(data[0]) if data else None,
        "last_id": _id(data[-1]) if data else None,
        "has_more": page.has_more,
    }


def _id(item: Any) -> str:
    value: str = item["id"] if isinstance(item, dict) else item.id
    return value
