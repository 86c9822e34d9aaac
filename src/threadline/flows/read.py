"""Mark messages read, and tell the end user where their channel shows it: on WhatsApp the newest of their
messages marked read gets a read receipt (a job through ``channels.outbox``), so they see the blue ticks."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.channels import outbox
from threadline.messages import service as messages
from threadline.messages.schemas import MarkRead


async def mark_read(session: AsyncSession, *, workspace_id: int, thread_id: str, data: MarkRead) -> messages.MarkedRead:
    """Mark the thread's messages in ``data`` read (``messages.service.mark_read``) and queue the read receipt."""
    marked = await messages.mark_read(session, workspace_id=workspace_id, thread_id=thread_id, data=data)
    if marked.newest_theirs is not None:
        message_id, channel = marked.newest_theirs
        if outbox.read_receipts(channel):
            await outbox.enqueue_read_receipt(session, workspace_id=workspace_id, message_id=message_id)
    return marked
