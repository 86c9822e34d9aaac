"""The channels threadline delivers on: one line per channel type, naming the factory of its ``ChannelSender``.

A channel type without a line here (``api``) delivers nothing: its messages are stored SENT. Each sender's
``name`` is its folder under ``channels/``, whose ``inbound.router`` ``channels.endpoints`` mounts at
``/channels/<name>/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from threadline.channels.sender import ChannelSender, SendOptions
from threadline.channels.twilio.sender import TwilioSender
from threadline.channels.whatsapp.sender import WhatsAppSender
from threadline.models.enums import ChannelType

__all__ = ["SENDERS", "SenderFactory", "delivers", "provider_names", "sender_for"]

SenderFactory = Callable[[SendOptions], ChannelSender]

SENDERS: Final[Mapping[ChannelType, SenderFactory]] = {
    ChannelType.SMS: TwilioSender,
    ChannelType.WHATSAPP: WhatsAppSender,
}


def delivers(channel: ChannelType) -> bool:
    """Whether messages on ``channel`` go out through a provider."""
    return channel in SENDERS


def sender_for(channel: ChannelType, options: SendOptions | None = None) -> ChannelSender | None:
    """The sender of ``channel`` (None for one that delivers nothing), working with ``options`` (the
    defaults are enough for what needs no provider call: ``split``, ``status``, ``limits``)."""
    factory = SENDERS.get(channel)
    return factory(options or SendOptions()) if factory is not None else None


def provider_names() -> list[str]:
    """Each registered provider's ``name`` once, in registry order: its folder under ``channels/``."""
    return list(dict.fromkeys(factory(SendOptions()).name for factory in SENDERS.values()))
