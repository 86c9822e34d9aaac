"""Output modes of message content: ``text`` (as stored), ``plain`` (Markdown removed), ``blocks``."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

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
