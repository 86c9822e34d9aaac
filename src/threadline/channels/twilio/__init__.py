"""Twilio Programmable Messaging (SMS): its client (`client.py`), its `ChannelSender` (`sender.py`) and its
webhooks (`inbound.py`)."""

from threadline.channels.twilio.client import DEFAULT_BASE_URL, TwilioClient

__all__ = ["DEFAULT_BASE_URL", "TwilioClient"]
