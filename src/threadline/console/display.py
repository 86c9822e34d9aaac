"""How the console shows people, channels and times, the same in the inbox and in a thread: the same person gets
the same initials and avatar colour in both panes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from threadline.models.enums import ChannelType

CHANNELS: tuple[tuple[ChannelType, str], ...] = (
    (ChannelType.API, "API"),
    (ChannelType.SMS, "SMS"),
    (ChannelType.WHATSAPP, "WhatsApp"),
)
_CHANNEL_LABELS = {channel.value: label for channel, label in CHANNELS}
_SEPARATORS = re.compile(r"[\s._@+-]+")


def channel_label(channel: ChannelType | str) -> str:
    value = channel.value if isinstance(channel, ChannelType) else str(channel)
    return _CHANNEL_LABELS.get(value, value)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def initials(name: str) -> str:
    """Up to two letters or digits for an avatar: "Ada Lovelace" AL, "+1 555 0100" 15, nothing usable "?"."""
    parts = [p for p in _SEPARATORS.split(name) if p and p[0].isalnum()]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def hue(key: str) -> int:
    """One of 8 avatar colours, the same for the same person every time."""
    return sum(key.encode()) % 8


def person(first: str | None, last: str | None, email: str) -> str:
    """A user's name as the console shows it: first and last name, else the email."""
    return " ".join(p for p in (first, last) if p) or email
