"""What a channel provider must do for outbound delivery: the ``ChannelSender`` protocol, and what goes in and
out of it.

A sender is the one place that knows its provider's rules: how a stored message becomes the provider's
request (content kinds, templates, buttons), how long one provider message may be (``limits``, ``split``),
and what the provider's status words mean in our lifecycle (``status``). ``channels.delivery`` drives the
lifecycle around it (claim, send, record, retry) and never asks which provider it is talking to; the
senders are found by channel type in ``channels.registry``.

``send`` answers a ``SentMessage`` or raises a ``ChannelError`` that says whether trying again later may
succeed (``retryable``) or the provider refused the message (and whether it may have taken it all the same:
``maybe_sent``). A sender never logs, never touches the database, and no secret is ever part of an error's
text or repr.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from threadline.channels.client import DEFAULT_TIMEOUT_S
from threadline.models.enums import MessageStatus, MessageType

__all__ = ["ChannelAccount", "ChannelSender", "Limits", "Outgoing", "SendOptions", "SentMessage"]


@dataclass(frozen=True)
class SentMessage:
    """What the provider said when it took a message.

    ``provider_id``: its message id (Twilio's ``SM…`` sid, WhatsApp's ``wamid.…``). ``account_id``: the
    account that sent it (Twilio's account SID, WhatsApp's phone number id). ``segments``: the SMS
    segments Twilio bills (None when it does not know yet, as with a Messaging Service). ``price`` and
    ``price_currency``: as the provider reports them (Twilio's ``price`` is usually null until the message
    is sent; ``price_unit`` comes at once). ``status``: the provider's status word (Twilio ``queued`` or
    ``accepted``, WhatsApp ``accepted`` or ``held_for_quality_assessment``). ``recipient_id``: the
    recipient as the provider knows them (WhatsApp's ``wa_id``, which may differ from the number sent to).
    """

    provider_id: str
    account_id: str | None
    segments: int | None
    price: str | None
    price_currency: str | None
    status: str
    recipient_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A stored outbound message as a sender needs it: ``public_id`` (given to the provider so that its
    status reports find the message even without the provider's id), the message's ``type``, ``content``,
    ``blocks`` and ``media_url``, and ``to``, the end user's address on the channel."""

    public_id: str
    type: MessageType
    content: str
    blocks: list[dict[str, Any]] | None
    media_url: str | None
    to: str

    def blocks_of(self, type_: str) -> list[dict[str, Any]]:
        """The message's blocks of ``type_`` (``buttons``, ``template``)."""
        return [b for b in self.blocks or () if isinstance(b, dict) and b.get("type") == type_]

    def buttons(self) -> list[tuple[str, str]]:
        """(payload, title) of the buttons the message offers."""
        found = []
        for block in self.blocks_of("buttons"):
            for button in block.get("buttons") or ():
                if isinstance(button, dict) and str(button.get("title") or "").strip():
                    title = str(button["title"]).strip()
                    found.append((str(button.get("payload") or title), title))
        return found

    def text_with_choices(self) -> str:
        """The content, and a button message's choices one per line: what a channel without buttons (or a
        message whose buttons do not fit) sends. The end user types one; the flow engine matches a typed
        title or payload."""
        text = self.content.strip()
        buttons = self.buttons()
        if buttons:
            choices = "\n".join(f"- {title}" for _, title in buttons)
            text = f"{text}\n{choices}" if text else choices
        return text


@dataclass(frozen=True, slots=True)
class SendOptions:
    """The process's settings a sender works with: the provider call's ``timeout_s``, ``allow_private``
    (reach loopback and private addresses: a provider stand-in in tests), and ``public_base_url``, where the
    provider reaches our webhooks (None: not known, so no status callback URL is given)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    allow_private: bool = False
    public_base_url: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """What one provider message may hold. ``text_chars``: text, in UTF-16 code units; ``segments``: the SMS
    segments one concatenated message may take (None: not an SMS channel); ``buttons`` and
    ``button_title_chars``: the reply buttons shown as buttons (0: none; more, or longer titles, and the
    choices go as text)."""

    text_chars: int
    segments: int | None = None
    buttons: int = 0
    button_title_chars: int = 0


class ChannelAccount(Protocol):
    """One integration as a sender sees it (``integrations.service.ChannelCredentials`` is one): its public
    id, its stored settings and its decrypted secrets."""

    @property
    def public_id(self) -> uuid.UUID: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...

    @property
    def secrets(self) -> Mapping[str, str]: ...


class ChannelSender(Protocol):
    """A channel provider's outbound side. ``channels.registry`` maps a channel type to a factory that
    builds one from ``SendOptions``.

    ``name``: the provider's folder under ``channels/``, and so its webhooks' path, ``/channels/<name>/``.
    ``limits``: what one provider message holds. ``read_receipts``: whether the end user sees that their
    messages were read (``mark_read`` does nothing otherwise)."""

    name: str
    limits: Limits
    read_receipts: bool

    def split(self, text: str) -> list[str]:
        """``text`` (a plain text message's content) as the texts of the provider messages it goes out as:
        ``[text]`` when it fits one, ``[]`` for ``""``."""
        ...

    def status(self, word: str) -> MessageStatus | None:
        """The lifecycle status a provider's status word reports; None for a word that is no step of an
        outbound message's delivery."""
        ...

    async def send(self, message: Outgoing, account: ChannelAccount) -> SentMessage:
        """One provider call that sends ``message`` from ``account``. Raises ``ChannelError``."""
        ...

    async def mark_read(self, account: ChannelAccount, external_id: str) -> None:
        """Tell the provider the end user's message ``external_id`` (and every earlier one) was read. Raises
        ``ChannelError``."""
        ...
