from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from threadline.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Order
from threadline.messages.rendering import MessageRenderer, OutputMode
from threadline.search import service
from threadline.search.schemas import Found, SearchPage
from threadline.web.deps import ReadAuth, SessionDep
from threadline.web.params import list_envelope
from threadline.web.responses import json_response

router = APIRouter(prefix="/search", tags=["search"])


@router.get(
    "/messages",
    response_model=SearchPage,
    summary="Search messages",
    description="Messages whose content holds every word of `q`, and the newest message of each thread whose end "
    "user's name or address does (`match` says which). Words are runs of letters and digits, matched whole and "
    "case-insensitively; other characters only separate them (no operators). Newest first by default; "
    "`after` / `before` take message ids (the cursor rule of every list).",
)
async def search_messages(
    session: SessionDep,
    auth: ReadAuth,
    q: Annotated[
        str,
        Query(min_length=1, max_length=service.MAX_QUERY_CHARS, description="The words to find (at most 16)."),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1 to 100.")] = DEFAULT_LIMIT,
    order: Annotated[Order, Query(description="Sorts the page; newest first (desc) by default.")] = Order.DESC,
    after: Annotated[str | None, Query(max_length=64, description="A message id: only results after it.")] = None,
    before: Annotated[str | None, Query(max_length=64, description="A message id: only results before it.")] = None,
) -> Response:
    page = await service.search_messages(
        session, workspace_id=auth.workspace_id, q=q, limit=limit, order=order, after=after, before=before
    )
    rows = [f.row for f in page.items]
    renderer = await MessageRenderer("", OutputMode.TEXT).prepare(session, auth.workspace_id, rows)

    def result(found: Found) -> dict[str, object]:
        message = renderer(found.row)
        message["thread_id"] = str(found.thread_id)
        return {
            "object": "search_result",
            "id": message["id"],
            "thread_id": message["thread_id"],
            "match": found.match,
            "message": message,
        }

    return json_response({"object": "list", **list_envelope(page, result)})
