"""The event types threadline emits. Webhook endpoints subscribe to these (or to ``*``/``prefix.*``)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"
    MESSAGE_DELETED = "message.deleted"
    THREAD_CREATED = "thread.created"
    THREAD_UPDATED = "thread.updated"
    THREAD_DELETED = "thread.deleted"
    THREAD_HANDOFF_STARTED = "thread.handoff_started"
    THREAD_HANDOFF_ENDED = "thread.handoff_ended"
    RUN_QUEUED = "run.queued"
    RUN_STARTED = "run.started"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    MESSAGE_DELTA = "message.delta"  # transient: a piece of a reply being written, never stored
    MESSAGE_TOOL_CALL = "message.tool_call"  # transient: a tool the run called, with its result, as it happens
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"


def matches(pattern: str, event_type: str) -> bool:
    """``*`` matches everything, ``message.*`` every message event, anything else itself."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def event_patterns() -> list[str]:
    """Every pattern ``valid_pattern`` accepts: ``*``, each family (``message.*``) and each type."""
    families = dict.fromkeys(f"{t.value.split('.')[0]}.*" for t in EventType)
    return ["*", *families, *(t.value for t in EventType)]


def valid_pattern(pattern: str) -> bool:
    if pattern == "*" or pattern in EventType.__members__.values():
        return True
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return any(t.startswith(prefix) for t in EventType)
    return False
