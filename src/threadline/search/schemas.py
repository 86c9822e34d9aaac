from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from threadline.kit.schemas import ListPage, OutputModel
from threadline.messages.schemas import MessageRead

Match = Literal["content", "end_user"]


@dataclass(frozen=True, slots=True)
class Found:
    """A message a search found: its row (the columns of ``messages``), its thread's public id and why."""

    row: Any
    thread_id: Any
    match: Match


class SearchResult(OutputModel):
    object: Literal["search_result"] = "search_result"
    id: str = Field(description="The message's id (the cursor for `after` / `before`).")
    thread_id: str = Field(description="The thread to open it in.")
    match: Match = Field(
        description="content: the message's text holds every word; end_user: the name or address of the thread's "
        "end user does, and this is the thread's newest message."
    )
    message: MessageRead


SearchPage = ListPage[SearchResult]
