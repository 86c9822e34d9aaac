from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.kit.schemas import IdRef, InputModel, ListPage, Metadata, NotNull, OutputModel
from threadline.models import Thread
from threadline.models.enums import ChannelType, MessageType, Role, SentBy, TagColor

IdList = Annotated[list[IdRef], Field(max_length=100)]


class ThreadCreate(InputModel):
    agent_id: Annotated[IdRef, Field(description="The agent that answers in this thread.")]
    end_user_id: IdRef
    agent_version_id: Annotated[
        IdRef | None, Field(description="Pin a version (of that agent); default: the agent's current version.")
    ] = None
    integration_id: IdRef | None = None
    active: bool = True
    blocked: bool = False
    metadata: Metadata = Field(default_factory=dict)
    tags: IdList = Field(default_factory=list, description="Tag ids.")
    assigned_to: IdList = Field(default_factory=list, description="User ids.")


class ThreadUpdate(InputModel):
    active: Annotated[bool | None, NotNull] = Field(
        default=None, description="false: a human has the thread; the AI stays quiet."
    )
    blocked: Annotated[bool | None, NotNull] = None
    metadata: Metadata | None = None
    tags: IdList | None = Field(default=None, description="Replaces the thread's tags (tag ids).")
    assigned_to: IdList | None = Field(default=None, description="Replaces the assigned users (user ids).")


class InboxView(StrEnum):
    """The inbox's views (threads.inbox): every thread, those waiting for a human, one operator's, nobody's."""

    ALL = "all"
    NEEDS_HUMAN = "needs_human"
    MINE = "mine"
    UNASSIGNED = "unassigned"


class ThreadOrderBy(StrEnum):
    CREATED_AT = "created_at"
    LAST_MESSAGE_AT = "last_message_at"


@dataclass(frozen=True, slots=True)
class ThreadFilters:
    """What GET /v1/threads narrows by; ids are public ids (one that names nothing matches nothing).
    ``view`` ``mine`` is the threads assigned to ``assigned_user_id``; ``channel`` is the thread's channel (its
    integration's type; a thread without one is on the plain API)."""

    agent_id: str | None = None
    end_user_id: str | None = None
    active: bool | None = None
    blocked: bool | None = None
    tag_id: str | None = None
    assigned_user_id: str | None = None
    updated_since: datetime | None = None
    view: InboxView = InboxView.ALL
    channel: ChannelType | None = None


@dataclass(frozen=True, slots=True)
class ActivityKey:
    """A place in the inbox order: a thread's last activity (its last message's time, else its creation time)
    and its number, which breaks ties."""

    at: datetime
    number: int


class ThreadTag(OutputModel):
    id: str
    name: str
    color: TagColor


class ThreadUser(OutputModel):
    id: str
    email: str
    first_name: str | None
    last_name: str | None


class ThreadRead(OutputModel):
    object: Literal["thread"] = "thread"
    id: str
    number: int = Field(
        description="Stable integer id of the thread, counted within the workspace (camelAI's dialect shows it)."
    )
    agent_id: str
    agent_version_id: str | None
    end_user_id: str
    integration_id: str | None
    active: bool
    blocked: bool
    tags: list[ThreadTag]
    assigned_to: list[ThreadUser]
    metadata: dict[str, Any]
    message_count: int
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ThreadPage(ListPage[ThreadRead]):
    first_cursor: str | None = Field(
        default=None,
        description="With order_by=last_message_at: the place of data[0] in that order, for `after` (null otherwise).",
    )
    last_cursor: str | None = Field(
        default=None,
        description="With order_by=last_message_at: the place of the last item, for `before` (null otherwise).",
    )


class ThreadCounts(OutputModel):
    """How many threads each inbox view holds (GET /v1/thread_counts)."""

    object: Literal["thread_counts"] = "thread_counts"
    all: int
    needs_human: int = Field(description="Handed to a human (active=false) and not answered by one since.")
    unassigned: int
    mine: int | None = Field(description="Assigned to the user `assigned_user_id` names; null without it.")


# The inbox's rows (threads.inbox.inbox_rows): plain dataclasses, built from database rows without validation (a
# page of 50 is built in well under a millisecond); the console renders them.


@dataclass(frozen=True, slots=True)
class InboxEndUser:
    id: str
    display_name: str
    channel: ChannelType
    address: str | None


@dataclass(frozen=True, slots=True)
class InboxAgent:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A thread's newest message, as an inbox row shows it; ``excerpt``: its content on one line, cut to about
    120 characters."""

    id: str
    role: Role
    sent_by: SentBy
    type: MessageType
    excerpt: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InboxTag:
    id: str
    name: str
    color: TagColor


@dataclass(frozen=True, slots=True)
class InboxUser:
    id: str
    email: str
    first_name: str | None
    last_name: str | None


Handoff = Literal["agent", "needs_human", "human"]


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One thread as the inbox lists it.

    ``unread_count``: the end user's messages not read yet, counted up to 100 (100 means 100 or more).
    ``handoff``: agent (the agent answers), needs_human (handed to a human, who has not answered since), human
    (handed to a human, who answered last). ``cursor``: the row's place in the inbox order (``after``/``before``).
    """

    id: str
    number: int
    channel: ChannelType
    agent: InboxAgent
    end_user: InboxEndUser
    last_message: InboxMessage | None
    last_activity_at: datetime
    unread_count: int
    active: bool
    blocked: bool
    needs_human: bool
    handoff: Handoff
    assigned_to: list[InboxUser]
    tags: list[InboxTag]
    cursor: str


@dataclass(frozen=True, slots=True)
class InboxPage:
    rows: list[InboxRow]
    has_more: bool
    first_cursor: str | None
    last_cursor: str | None


def thread_read(thread: Thread, refs: dict[str, dict[int, Any]]) -> ThreadRead:
    """Render ``thread``; ``refs`` maps each referenced table to {row id: public id} for this page."""
    return ThreadRead(
        id=str(thread.public_id),
        number=thread.number,
        agent_id=str(refs["agents"][thread.agent_id]),
        agent_version_id=(
            str(refs["agent_versions"][thread.agent_version_id]) if thread.agent_version_id is not None else None
        ),
        end_user_id=str(refs["end_users"][thread.end_user_id]),
        integration_id=(
            str(refs["integrations"][thread.integration_id]) if thread.integration_id is not None else None
        ),
        active=thread.active,
        blocked=thread.blocked,
        tags=[ThreadTag(id=str(t.public_id), name=t.name, color=t.color) for t in thread.tags],
        assigned_to=[
            ThreadUser(id=str(u.public_id), email=u.email, first_name=u.first_name, last_name=u.last_name)
            for u in thread.assignees
        ],
        metadata=thread.metadata_,
        message_count=thread.message_count,
        last_message_at=thread.last_message_at,
        created_at=thread.created_at,
        updated_at=thread.updated_at,
    )
