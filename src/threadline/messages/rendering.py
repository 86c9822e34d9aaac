"""Messages as /v1 shows them (``MessageRenderer``) and the output modes of their content: ``text`` (as
stored), ``plain`` (Markdown removed), ``blocks``."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.messages.repository import MessageRepository
from threadline.models import Message
from threadline.models.enums import MessageType


class OutputMode(StrEnum):
    TEXT = "text"
    PLAIN = "plain"
    BLOCKS = "blocks"
    STRUCTURED = "structured"  # Aitronos's synonym for blocks


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


def markdown_to_plain(source: str) -> str:
    """The text a reader sees once Markdown is rendered: no markup, paragraphs kept, code kept verbatim."""
    if not source:
        return source
    blocks: list[tuple[str, bool]] = []  # (text, inside a list or table)
    depth = 0
    for token in _parser().parse(source):
        if token.type in ("bullet_list_open", "ordered_list_open", "table_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close", "table_close"):
            depth -= 1
        elif token.type == "inline":
            blocks.append((_inline_text(token.children or []), depth > 0))
        elif token.type in ("fence", "code_block"):
            blocks.append((token.content.rstrip("\n"), depth > 0))
    out: list[str] = []
    for i, (text, nested) in enumerate(blocks):
        if i:
            out.append("\n" if nested and blocks[i - 1][1] else "\n\n")
        out.append(text)
    return "".join(out)


def _inline_text(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(_inline_text(child.children or []) or child.content)
    return "".join(parts)


def content_blocks(message: Message) -> list[dict[str, Any]]:
    """Typed blocks: what the message stored, else derived (tool calls, their results, media, text)."""
    if message.blocks:
        return list(message.blocks)
    blocks: list[dict[str, Any]] = []
    for call in message.tool_calls or []:
        blocks.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "arguments": call.get("arguments"),
            }
        )
        if "result" in call or "error" in call:
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_call_id": call.get("id"),
                    "content": call.get("result"),
                    "is_error": bool(call.get("error")),
                }
            )
    if message.media_url and message.type is not MessageType.TEXT:
        blocks.append({"type": message.type.value, "url": message.media_url})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def render_content(message: Message, mode: OutputMode) -> str | list[dict[str, Any]]:
    if mode is OutputMode.PLAIN:
        return markdown_to_plain(message.content)
    if mode in (OutputMode.BLOCKS, OutputMode.STRUCTURED):
        return content_blocks(message)
    return message.content


class MessageRenderer:
    """Renders messages (ORM objects or the plain rows of a page) as /v1 message objects (``MessageRead``),
    looking up the public ids they reference in one query per table for the whole batch."""

    def __init__(self, thread_id: str, mode: OutputMode) -> None:
        self.thread_id = thread_id
        self.mode = mode
        self.users: dict[int, Any] = {}
        self.replies_to: dict[int, Any] = {}

    async def prepare(self, session: AsyncSession, workspace_id: int, messages: Sequence[Any]) -> MessageRenderer:
        repo = MessageRepository(session, workspace_id)
        self.users = await repo.user_public_ids({m.sent_by_user_id for m in messages if m.sent_by_user_id})
        self.replies_to = await repo.message_public_ids({m.in_response_to_id for m in messages if m.in_response_to_id})
        return self

    def __call__(self, m: Any) -> dict[str, Any]:
        user = self.users.get(m.sent_by_user_id) if m.sent_by_user_id else None
        reply_to = self.replies_to.get(m.in_response_to_id) if m.in_response_to_id else None
        return {
            "object": "message",
            "id": str(m.public_id),
            "number": m.number,
            "thread_id": self.thread_id,
            "role": m.role,
            "type": m.type,
            "content": render_content(m, self.mode),
            "media_url": m.media_url,
            "attachments": m.attachments,
            "metadata": m.metadata_ if isinstance(m, Message) else m.metadata,
            "direction": m.direction,
            "sent_by": m.sent_by,
            "sent_by_user_id": str(user) if user else None,
            "source": m.source,
            "status": m.status,
            "read": m.read_at is not None,
            "read_at": m.read_at,
            "sent_at": m.sent_at,
            "delivered_at": m.delivered_at,
            "failed_at": m.failed_at,
            "external_id": m.external_id,
            "provider_account_id": m.provider_account_id,
            "segments": m.segments,
            "price": m.price,
            "price_currency": m.price_currency,
            "error_code": m.error_code,
            "error_message": m.error_message,
            "tool_calls": m.tool_calls,
            "iterations": m.iterations,
            "in_response_to": str(reply_to) if reply_to else None,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
        }
