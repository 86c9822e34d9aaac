"""Append a message, and what follows from it: the one way every surface, the channels' webhooks and the run
path add a message to a thread.

Three steps, each its domain's: ``messages`` stores it (and the rest of a text its channel sends as several
messages), ``channels.outbox`` queues the job that sends each one stored QUEUED (SMS, WhatsApp), and ``runs``
queues (or joins) the run that answers an end user's message to a thread its agent holds. All in the caller's
transaction: the caller commits, and a run or a send starts only once the message is there to read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.channels import outbox
from threadline.db.engine import session_settings
from threadline.events import service as events
from threadline.messages import service as messages
from threadline.models import Message, Run
from threadline.runs import service as runs


@dataclass(slots=True)
class Appended:
    """What appending a message did: the message (the first provider message of a text split for its channel),
    the run that will answer it (queued, or joined: None when the message asks for none or the thread takes
    none), and whether a delivery job now sends it on its channel."""

    message: Message
    # The message.created event of this transaction: the message as /v1 shows it, numbered at commit.
    event: events.PendingEvent
    run: Run | None = None
    # The run's last event of this transaction (run.queued or run.started); None when the message joined a run
    # queued earlier, or started none.
    run_event: events.PendingEvent | None = None
    delivery_queued: bool = False


async def append_message(
    session: AsyncSession, *, workspace_id: int, thread_id: str, new: messages.NewMessage
) -> Appended:
    """Store ``new`` at the end of the thread (404 if it is not in this workspace), queue its delivery on the
    thread's channel, and have the agent answer it when it is an end user's message the agent should answer."""
    stored = await messages.store_message(
        session, workspace_id=workspace_id, thread_id=thread_id, new=new, split=outbox.parts
    )
    for message in stored.queued:
        await outbox.enqueue(session, message)
    appended = Appended(stored.message, stored.event, delivery_queued=bool(stored.queued))
    ask = stored.answer
    if ask is not None:
        appended.run, appended.run_event = await runs.request_run(
            session,
            workspace_id=workspace_id,
            thread_id=ask.thread_key,
            thread_public_id=ask.thread_public_id,
            agent_version_id=ask.agent_version_id,
            agent_version_public_id=ask.agent_version_public_id,
            message_id=ask.message_id,
            message_public_id=ask.message_public_id,
            message_seq=ask.message_seq,
            debounce_s=runs.debounce_window(
                session_settings(session).runs, ask.version_settings, ask.channel, new.debounce_s
            ),
            now=ask.at,
        )
    return appended
