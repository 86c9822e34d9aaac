"""What a new outbound message on SMS or WhatsApp needs at once: its text cut to what one provider
message takes (``parts``) and the job that sends it (``enqueue``). Kept apart from ``channels.delivery``
(the job itself) so that ``messages.service`` can import it without importing the job and what it uses.

Splitting happens when the message is stored, not when it is sent, so that the store holds one message
per provider message (each with its own provider id, status and lifecycle) and the parts take
consecutive places in the thread. How a text is cut is the channel's sender's (``ChannelSender.split``):
an SMS body goes as one concatenated message up to ten segments (Twilio joins them on the handset) and a
longer one becomes several messages; a WhatsApp text goes up to 4096 characters per message. Only plain
text is split: a caption, a button body or a template that is too long is the provider's to refuse, and
the message ends FAILED with the provider's error.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.channels.registry import sender_for
from threadline.db.engine import session_settings
from threadline.jobs import service as jobs
from threadline.models import Message
from threadline.models.enums import ChannelType, MessageType

__all__ = [
    "DELIVER_KIND",
    "HELD_CODE",
    "HELD_MESSAGE",
    "RECEIPT_KIND",
    "dedupe_key",
    "enqueue",
    "enqueue_read_receipt",
    "parts",
    "read_receipts",
    "receipt_dedupe_key",
]

DELIVER_KIND: Final = "channels.deliver"
RECEIPT_KIND: Final = "channels.read_receipt"
# An agent's message that a human's taking over the thread stopped before it went out.
HELD_CODE: Final = "human_handoff"
HELD_MESSAGE: Final = "not sent: a human took over the thread before it went out"


def parts(channel: ChannelType, type_: MessageType, content: str) -> list[str]:
    """``content`` as the texts of the provider messages it goes out as (one unless it is too long)."""
    sender = sender_for(channel)
    if sender is None or type_ is not MessageType.TEXT or not content:
        return [content]
    return sender.split(content) or [content]


def read_receipts(channel: ChannelType) -> bool:
    """Whether the end user on ``channel`` sees that their messages were read (``enqueue_read_receipt``)."""
    sender = sender_for(channel)
    return sender is not None and sender.read_receipts


def dedupe_key(message_id: int) -> str:
    """The send job's key: one job per message, found again by the job of the message before it."""
    return f"message:{message_id}"


def receipt_dedupe_key(message_id: int) -> str:
    """The read-receipt job's key: one per message (an erasure finds the jobs of a message by these keys)."""
    return f"read:{message_id}"


async def enqueue(session: AsyncSession, message: Message) -> None:
    """Add the job that sends ``message`` (stored QUEUED) to the caller's transaction."""
    await jobs.enqueue(
        session,
        kind=DELIVER_KIND,
        payload={"message_id": message.id},
        workspace_id=message.workspace_id,
        max_attempts=session_settings(session).channels.send_max_attempts,
        dedupe_key=dedupe_key(message.id),
    )


async def enqueue_read_receipt(session: AsyncSession, *, workspace_id: int, message_id: int) -> None:
    """Add the job that tells WhatsApp the end user's message ``message_id`` (and so every earlier one)
    was read. One per message, however often it is marked read."""
    await jobs.enqueue(
        session,
        kind=RECEIPT_KIND,
        payload={"message_id": message_id},
        workspace_id=workspace_id,
        max_attempts=session_settings(session).channels.send_max_attempts,
        dedupe_key=receipt_dedupe_key(message_id),
    )
