from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from threadline.kit.schemas import IdRef, InputModel, ListPage, Metadata, NotNull, OutputModel
from threadline.models.enums import Direction, MessageStatus, MessageType, Role, SentBy, Source
from threadline.runs.schemas import RunRead

MAX_CONTENT = 64 * 1024
JsonObjects = Annotated[list[dict[str, Any]], Field(max_length=100)]


def _given(field: str, schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: ``field`` is present and matches ``schema``."""
    return {"required": [field], "properties": {field: schema}}


_ASSISTANT = _given("role", {"const": Role.ASSISTANT.value})
_NON_EMPTY_LIST = {"type": "array", "minItems": 1}


class MessageCreate(InputModel):
    """A message added through the API: by the end user (role user), a human operator (role assistant
    with ``user_id``), the system (role system), or a record of what an agent said elsewhere."""

    # What _consistent checks, for the document.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"if": _given("user_id", {"type": "string"}), "then": _ASSISTANT},
                {
                    "if": {"anyOf": [_given(f, _NON_EMPTY_LIST) for f in ("tool_calls", "iterations")]},
                    "then": _ASSISTANT,
                },
                {
                    "anyOf": [
                        _given("content", {"minLength": 1}),
                        _given("media_url", {"type": "string", "minLength": 1}),
                        _given("blocks", _NON_EMPTY_LIST),
                        _given("attachments", _NON_EMPTY_LIST),
                    ]
                },
            ]
        }
    )

    role: Role = Role.USER
    type: MessageType = MessageType.TEXT
    content: Annotated[str, Field(max_length=MAX_CONTENT)] = ""
    blocks: JsonObjects | None = Field(default=None, description="Structured content (buttons, templates...).")
    media_url: Annotated[str | None, Field(max_length=2048)] = None
    attachments: JsonObjects = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)
    user_id: Annotated[IdRef | None, Field(description="The operator (user id) writing as the agent's side.")] = None
    source: Literal[Source.API, Source.UI, Source.MCP] = Source.API
    in_response_to: Annotated[IdRef | None, Field(description="A message id in this thread.")] = None
    tool_calls: JsonObjects | None = None
    iterations: JsonObjects | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MessageCreate:
        if self.user_id is not None and self.role is not Role.ASSISTANT:
            raise ValueError("user_id (an operator) goes with role 'assistant'")
        if (self.tool_calls or self.iterations) and self.role is not Role.ASSISTANT:
            raise ValueError("tool_calls and iterations belong to role 'assistant'")
        if not self.content and not self.media_url and not self.blocks and not self.attachments:
            raise ValueError("a message needs content, media_url, blocks or attachments")
        return self


class MessageUpdate(InputModel):
    read: Annotated[bool | None, NotNull] = Field(
        default=None, description="true marks the message read; false unmarks it."
    )
    metadata: Metadata | None = None


class MarkRead(InputModel):
    # What _one_of checks, for the document.
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["message_ids", "up_to"],
                "properties": {"message_ids": {"type": "array"}, "up_to": {"type": "string"}},
            }
        }
    )

    message_ids: Annotated[list[IdRef] | None, Field(max_length=1000)] = Field(
        default=None, description="Mark these messages read."
    )
    up_to: IdRef | None = Field(default=None, description="Mark every message up to and including this one read.")

    @model_validator(mode="after")
    def _one_of(self) -> MarkRead:
        if self.message_ids is not None and self.up_to is not None:
            raise ValueError("give message_ids or up_to, not both")
        return self


class ReadReceipt(OutputModel):
    object: Literal["read_receipt"] = "read_receipt"
    thread_id: str
    marked: int = Field(description="How many messages were unread and are now read.")
    read_at: datetime


class MessageRead(OutputModel):
    object: Literal["message"] = "message"
    id: str
    number: int = Field(
        description="Stable integer id of the message, counted within the workspace (camelAI's dialect shows it)."
    )
    thread_id: str
    role: Role
    type: MessageType
    content: str | list[dict[str, Any]] = Field(description="A string, or typed blocks with output_mode=blocks.")
    media_url: str | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, Any]
    direction: Direction
    sent_by: SentBy
    sent_by_user_id: str | None
    source: Source
    status: MessageStatus
    read: bool
    read_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    external_id: str | None
    provider_account_id: str | None
    segments: int | None
    price: str | None
    price_currency: str | None
    error_code: str | None
    error_message: str | None
    tool_calls: list[dict[str, Any]] | None = None
    iterations: list[dict[str, Any]] | None = None
    in_response_to: str | None
    created_at: datetime
    updated_at: datetime


MessagePage = ListPage[MessageRead]


class MessageCreated(MessageRead):
    """The created message, the run that will answer it, and (with ``wait``) the replies so far."""

    run: RunRead | None = Field(
        default=None, description="The run answering this message: end-user messages on threads whose agent answers."
    )
    replies: list[MessageRead] | None = Field(
        default=None, description="With `wait`: the agent's replies produced within that time (else null)."
    )
