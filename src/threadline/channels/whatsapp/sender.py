"""WhatsApp's outbound side (``ChannelSender``): which kind of Cloud API message a stored message becomes
(media with a caption, an approved template, reply buttons when they fit, else text), texts cut to 4096
characters, read receipts, and WhatsApp's status words in our lifecycle."""

from __future__ import annotations

from typing import Any, Final

from threadline.channels.errors import ChannelError
from threadline.channels.segments import WHATSAPP_TEXT_LIMIT, split_whatsapp_text
from threadline.channels.sender import ChannelAccount, Limits, Outgoing, SendOptions, SentMessage
from threadline.channels.whatsapp.client import MessageKind, ReplyButton, Template, WhatsAppClient
from threadline.models.enums import MessageStatus, MessageType

__all__ = ["STATUSES", "WhatsAppSender", "content"]

STATUSES: Final[dict[str, MessageStatus]] = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
}
LIMITS: Final = Limits(text_chars=WHATSAPP_TEXT_LIMIT, buttons=3, button_title_chars=20)
BUTTON_ID_CHARS: Final = 256  # a reply button's id, which carries the button's payload
MEDIA_KINDS: Final[dict[MessageType, MessageKind]] = {
    MessageType.IMAGE: "image",
    MessageType.AUDIO: "audio",
    MessageType.VIDEO: "video",
    MessageType.DOCUMENT: "document",
}


class WhatsAppSender:
    """Sends through a ``whatsapp`` integration's phone number (its settings: ``phone_number_id``,
    ``api_base_url``, ``api_version``; its secret: ``access_token``)."""

    name = "whatsapp"
    limits = LIMITS
    read_receipts = True

    def __init__(self, options: SendOptions | None = None) -> None:
        self.options = options or SendOptions()

    def split(self, text: str) -> list[str]:
        return split_whatsapp_text(text, limit=self.limits.text_chars)

    @staticmethod
    def status(word: str) -> MessageStatus | None:
        return STATUSES.get(word)

    async def send(self, message: Outgoing, account: ChannelAccount) -> SentMessage:
        whatsapp = self._client(account)
        kind, arguments = content(message)
        return await whatsapp.send(to=message.to, kind=kind, callback_data=message.public_id, **arguments)

    async def mark_read(self, account: ChannelAccount, external_id: str) -> None:
        await self._client(account).mark_read(external_id)

    def _client(self, account: ChannelAccount) -> WhatsAppClient:
        config = account.settings
        return WhatsAppClient(
            str(config["api_base_url"]),
            str(config["api_version"]),
            str(config["phone_number_id"]),
            account.secrets.get("access_token", ""),
            timeout_s=self.options.timeout_s,
            allow_private=self.options.allow_private,
        )


def content(message: Outgoing) -> tuple[MessageKind, dict[str, Any]]:
    """The WhatsApp message kind and ``WhatsAppClient.send`` arguments for ``message``: its media with the
    text as the caption (none for audio); a template block as the template; up to three buttons with short
    titles as reply buttons (more, or longer, are written out as choices in the text); else its text.
    ``ChannelError`` (not retryable) when there is nothing to send."""
    text = message.content.strip()
    if message.type in MEDIA_KINDS and message.media_url:
        kind = MEDIA_KINDS[message.type]
        return kind, {"media_url": message.media_url, "text": (text or None) if kind != "audio" else None}
    if message.type is MessageType.TEMPLATE:
        for block in message.blocks_of("template"):
            if block.get("name"):
                return "template", {"template": _template(block)}
    buttons = message.buttons()
    if buttons:
        fits = len(buttons) <= LIMITS.buttons and all(
            len(title) <= LIMITS.button_title_chars and len(payload) <= BUTTON_ID_CHARS for payload, title in buttons
        )
        if fits and text:
            return "interactive_buttons", {"text": text, "buttons": [ReplyButton(p, t) for p, t in buttons]}
        text = message.text_with_choices()  # too many or too long for reply buttons: the choices as text
    if not text:
        raise ChannelError("empty_message", "the message has no text or media to send", False)
    return "text", {"text": text}


def _template(block: dict[str, Any]) -> Template:
    """A template block (``name``, ``language``, ``params``: a list, or named parameters) as WhatsApp's."""
    params = block.get("params")
    parameters: list[dict[str, Any]] = []
    if isinstance(params, list):
        parameters = [{"type": "text", "text": str(value)} for value in params]
    elif isinstance(params, dict):
        parameters = [{"type": "text", "parameter_name": str(k), "text": str(v)} for k, v in params.items()]
    components = [{"type": "body", "parameters": parameters}] if parameters else []
    return Template(name=str(block["name"]), language=str(block.get("language") or "en_US"), components=components)
