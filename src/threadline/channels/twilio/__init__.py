"""Twilio Programmable Messaging (SMS): the outbound client."""

from threadline.channels.twilio.client import DEFAULT_BASE_URL, TwilioClient

__all__ = ["DEFAULT_BASE_URL", "TwilioClient"]
