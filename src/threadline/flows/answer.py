"""Send and wait: store an end user's message, commit, and wait (bounded) for the agent's replies.

The run that answers a message cannot start before the message is committed, so a surface that wants the
answer in the same response commits early and then waits, holding no connection and no lock meanwhile.
Both ``POST /v1/threads/{id}/messages?wait=`` and Altur's ``POST /message`` do it through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.events.hub import EventHub
from threadline.flows import send
from threadline.messages import service as messages
from threadline.models import Message, Run
from threadline.runs.waiting import wait_for_run


@dataclass(frozen=True, slots=True)
class Waiting:
    """What waiting needs from the surface: how to commit what the request stored (and let the writers behind
    it go), where run events are heard, a session factory for the re-reads, and the bounds."""

    commit: Callable[[], Awaitable[None]]
    hub: EventHub
    read_maker: async_sessionmaker[AsyncSession]
    max_s: float
    poll_s: float


@dataclass(slots=True)
class Answered:
    message: Message
    run: Run | None  # as it is after the wait; None when no run answers (a human has the thread, it is blocked)
    replies: list[Message]  # what the agent said to the end user within the wait: never notes for operators


async def wait_for_answer(waiting: Waiting, workspace_id: int, run: Run, seconds: float) -> tuple[Run, list[Message]]:
    """Commit, then wait up to ``seconds`` (capped) for ``run`` to finish: the run as it is then, and its replies."""
    await waiting.commit()
    return await wait_for_run(
        waiting.hub, waiting.read_maker, workspace_id, run, seconds=min(seconds, waiting.max_s), poll_s=waiting.poll_s
    )


async def send_and_wait(
    session: AsyncSession,
    waiting: Waiting,
    *,
    workspace_id: int,
    thread_id: str,
    new: messages.NewMessage,
    seconds: float | None = None,
) -> Answered:
    """Append ``new`` (an end user's message) and wait for the run it starts (``seconds``, default the cap)."""
    appended = await send.append_message(session, workspace_id=workspace_id, thread_id=thread_id, new=new)
    if appended.run is None:
        await waiting.commit()
        return Answered(appended.message, None, [])
    run, replies = await wait_for_answer(
        waiting, workspace_id, appended.run, waiting.max_s if seconds is None else seconds
    )
    return Answered(appended.message, run, replies)


def waiting_for(commit: Callable[[], Awaitable[None]], state: Any) -> Waiting:
    """A ``Waiting`` from the app's state (``events``, ``read_sessionmaker``, ``settings``)."""
    settings = state.settings
    return Waiting(
        commit=commit,
        hub=state.events,
        read_maker=state.read_sessionmaker,
        max_s=settings.runs.wait_max_s,
        poll_s=settings.events.poll_interval_s,
    )
