"""The WhatsApp Business Cloud API (Graph API): its client (`client.py`), its `ChannelSender` (`sender.py`) and
its webhook (`inbound.py`)."""

from threadline.channels.whatsapp.client import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    MessageKind,
    ReplyButton,
    Template,
    WhatsAppClient,
)

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "MessageKind", "ReplyButton", "Template", "WhatsAppClient"]
