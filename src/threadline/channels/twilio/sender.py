"""Twilio's outbound side (``ChannelSender``): an SMS (or MMS with a media URL) per message, its text cut to
ten segments at most, buttons written out as choices, and Twilio's status words in our lifecycle."""

from __future__ import annotations

from typing import Final

from threadline.channels.errors import ChannelError
from threadline.channels.segments import SMS_MAX_SEGMENTS, TWILIO_MAX_BODY_CHARS, split_sms
from threadline.channels.sender import ChannelAccount, Limits, Outgoing, SendOptions, SentMessage
from threadline.channels.twilio.client import TwilioClient
from threadline.models.enums import MessageStatus, MessageType

__all__ = ["MESSAGE_TAG", "STATUSES", "TwilioSender"]

# The query parameter of the StatusCallback URL a send gives Twilio: the message's public id.
MESSAGE_TAG: Final = "message"

# Twilio's MessageStatus words -> our lifecycle; None: a status of no outbound message's lifecycle.
STATUSES: Final[dict[str, MessageStatus | None]] = {
    "accepted": MessageStatus.QUEUED,
    "scheduled": MessageStatus.QUEUED,
    "queued": MessageStatus.QUEUED,
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "read": MessageStatus.READ,
    "canceled": None,
    "receiving": None,
    "received": None,
}


class TwilioSender:
    """Sends through an ``sms`` integration's Twilio account (its settings: ``account_sid``, ``from_number``
    or ``messaging_service_sid``, ``api_base_url``, ``status_callback``; its secret: ``auth_token``)."""

    name = "twilio"
    limits = Limits(text_chars=TWILIO_MAX_BODY_CHARS, segments=SMS_MAX_SEGMENTS)
    read_receipts = False  # an SMS shows no read receipts

    def __init__(self, options: SendOptions | None = None) -> None:
        self.options = options or SendOptions()

    def split(self, text: str) -> list[str]:
        """One concatenated SMS up to ten segments (Twilio joins them on the handset); longer, several."""
        assert self.limits.segments is not None
        return split_sms(text, max_segments=self.limits.segments, max_chars=self.limits.text_chars)

    @staticmethod
    def status(word: str) -> MessageStatus | None:
        return STATUSES.get(word)

    async def send(self, message: Outgoing, account: ChannelAccount) -> SentMessage:
        config = account.settings
        twilio = TwilioClient(
            str(config["api_base_url"]),
            str(config["account_sid"]),
            account.secrets.get("auth_token", ""),
            timeout_s=self.options.timeout_s,
            allow_private=self.options.allow_private,
        )
        body = message.text_with_choices()
        if not body and not message.media_url:
            raise ChannelError("empty_message", "the message has no text or media to send", False)
        return await twilio.send_sms(
            to=message.to,
            body=body,
            from_number=config.get("from_number"),
            messaging_service_sid=config.get("messaging_service_sid") if not config.get("from_number") else None,
            status_callback=self._status_callback(message, account),
            media_url=message.media_url if message.type is not MessageType.TEXT else None,
        )

    def _status_callback(self, message: Outgoing, account: ChannelAccount) -> str | None:
        """Where Twilio reports the message's progress (``twilio/inbound.py``'s status endpoint), with the
        message's public id: None when the integration turned callbacks off or our public URL is unknown."""
        base = self.options.public_base_url
        if not account.settings.get("status_callback", True) or not base:
            return None
        return f"{base.rstrip('/')}/channels/{self.name}/{account.public_id}/status?{MESSAGE_TAG}={message.public_id}"

    async def mark_read(self, account: ChannelAccount, external_id: str) -> None:
        """Nothing: SMS has no read receipts (``read_receipts`` is False, so it is not called)."""
