"""Canonical vocabularies. Dialects map these onto their vendors' words (e.g. role user -> sent_by EU)."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class AgentType(StrEnum):
    TEXT = "TEXT"
    CALL = "CALL"


class AgentMode(StrEnum):
    FLOW = "FLOW"
    PROMPT = "PROMPT"


class ChannelType(StrEnum):
    API = "api"
    SMS = "sms"
    WHATSAPP = "whatsapp"


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"
    HIDDEN = "hidden"


class MessageType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    BUTTON = "button"
    TEMPLATE = "template"
    DOCUMENT = "document"


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class SentBy(StrEnum):
    """Who wrote a message: the end user, the agent (AI), a human operator, or the system."""

    END_USER = "end_user"
    AGENT = "agent"
    OPERATOR = "operator"
    SYSTEM = "system"


class Source(StrEnum):
    """How a message entered threadline."""

    API = "api"
    UI = "ui"
    MCP = "mcp"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    AGENT = "agent"


class MessageStatus(StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    UNDELIVERED = "UNDELIVERED"
    READ = "READ"
    RECEIVED = "RECEIVED"
    DISCARDED = "DISCARDED"


class TagColor(StrEnum):
    BLUE = "blue"
    GREEN = "green"
    RED = "red"
    PINK = "pink"
    PURPLE = "purple"
    ORANGE = "orange"
    YELLOW = "yellow"


class JobState(StrEnum):
    """queued (waiting, maybe for a retry) -> running (leased) -> succeeded, or dead after its last attempt."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


class WebhookDeliveryStatus(StrEnum):
    """pending (an attempt is due or running) -> succeeded, or failed after the last retry (or when disabled)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
