"""A person changes a thread: the threads service makes the change, and a person's taking the thread over from
the agent also stops the agent's messages still waiting to go out on SMS or WhatsApp (QUEUED, their send not
started). They end FAILED with ``human_handoff``, so the end user does not get the agent's words after a human
took over, as the run path keeps a reply that comes after the handoff. Not when the agent itself hands over
(``runs.finish`` calls the service directly): its last words, the handoff message stored in the same
transaction, must go out.

``PATCH /v1/threads/{id}`` and the console's actions come through here, so an operator's click is the same
change, with the same events, webhooks and audit record, as the API call.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit import service as audit
from threadline.channels import outbox
from threadline.kit.clock import utcnow
from threadline.messages import lifecycle
from threadline.models import Thread
from threadline.threads import service as threads
from threadline.threads.schemas import ThreadUpdate

HELD = lifecycle.ProviderFields(error_code=outbox.HELD_CODE, error_message=outbox.HELD_MESSAGE)


async def update_thread(
    session: AsyncSession,
    *,
    workspace_id: int,
    thread_id: str,
    data: ThreadUpdate,
    actor: audit.Actor,
    handoff_reason: str | None = None,
) -> Thread:
    """Apply ``data`` to the thread as ``actor`` (an API key, an operator)."""
    updated = await threads.update_thread(
        session, workspace_id=workspace_id, thread_id=thread_id, data=data, actor=actor, handoff_reason=handoff_reason
    )
    if updated.taken_over:
        await lifecycle.fail_agent_messages_waiting(
            session, workspace_id=workspace_id, thread_key=updated.thread.id, at=utcnow(), provider=HELD
        )
    return updated.thread
