"""``POST /responses`` with ``stream: true``: the run's live events as OpenAI's Responses streaming events.

What the run does arrives as its transient events (``message.delta``: a piece of text of one model call;
``message.tool_call``: a tool call with its result, as it completes) and ends with the run's stored end (the
run's status, its replies). They map as docs/dialects/openai.md ("Streaming") says:

- the text of model call ``i`` is one ``message`` item, ``msg_<run>_<i>``: ``response.output_item.added``,
  ``response.content_part.added``, ``response.output_text.delta`` per piece; it is done (``commentary``) when
  that call turns out to call tools, or (``final_answer``) when the run ends;
- each tool call is a ``function_call`` item and its result a ``function_call_output`` item, added and done;
- the run's end: the items not streamed yet (a FLOW agent's replies, anything missed), then
  ``response.completed`` (``response.failed`` for a failed run, ``response.incomplete`` for a cancelled one)
  with the response as ``GET /responses/{id}`` shows it.

Every event carries ``sequence_number``, from 0. The ids an event announces are the ids the items are stored
under (``ids``), so a client may fetch any of them from the conversation afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.dialects.openai import ids, render
from threadline.errors import NotFound
from threadline.events.hub import Subscription
from threadline.events.types import EventType
from threadline.models import Run, RunStatus
from threadline.models.run import FINISHED
from threadline.runs import service as runs

_TERMINAL = {
    RunStatus.COMPLETED: "response.completed",
    RunStatus.FAILED: "response.failed",
    RunStatus.CANCELLED: "response.incomplete",
}


@dataclass(slots=True)
class _Text:
    """The text item being written: its place in the output, the model call it is the text of."""

    index: int
    iteration: int
    item_id: str
    text: str = ""


class ResponseEvents:
    """The streaming events of one response (one run), numbered in order, as SSE frames."""

    def __init__(self, *, run_uid: uuid.UUID, thread_uid: uuid.UUID, agent_uid: uuid.UUID) -> None:
        self.run_uid = run_uid
        self.thread_uid = thread_uid
        self.agent_uid = agent_uid
        self.sequence = 0
        self.output: list[render.Item] = []  # each item announced, as it is now, by output index
        self.places: dict[str, int] = {}  # item id -> output index
        self.calls: dict[str, int] = {}  # call id -> its index among the run's tool calls
        self.writing: _Text | None = None

    def frame(self, type_: str, **fields: Any) -> bytes:
        body = {"type": type_, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return b"event: " + type_.encode() + b"\ndata: " + to_json(body) + b"\n\n"

    def _response(self, run: Run, *, status: str | None = None) -> dict[str, Any]:
        return render.response(
            run, thread_uid=self.thread_uid, agent_uid=self.agent_uid, output=list(self.output), status=status
        )

    def start(self, run: Run) -> list[bytes]:
        return [
            self.frame("response.created", response=self._response(run, status="in_progress")),
            self.frame("response.in_progress", response=self._response(run, status="in_progress")),
        ]

    # ---------------------------------------------------------------------------------------- as it happens

    def transient(self, envelope: dict[str, Any]) -> list[bytes]:
        """The frames one of the run's transient events makes (none for another run's)."""
        data = envelope.get("data") or {}
        if data.get("run_id") != str(self.run_uid):
            return []
        iteration = data.get("iteration")
        if not isinstance(iteration, int):
            return []
        if envelope.get("type") == EventType.MESSAGE_DELTA and isinstance(data.get("delta"), str):
            return self.delta(iteration, data["delta"])
        if envelope.get("type") == EventType.MESSAGE_TOOL_CALL:
            return self.tool_call(data)
        return []

    def delta(self, iteration: int, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self.writing is not None and self.writing.iteration != iteration:
            frames += self._close_text("commentary")  # a later model call: that one went on to call tools
        if self.writing is None:
            item_id = ids.text_item(self.run_uid, iteration)
            if item_id in self.places:  # the same call again (an attempt retried): its text is streamed already
                return frames
            item = render.assistant_message(item_id, "", status="in_progress")
            self.writing = _Text(self._add(item), iteration, item_id)
            frames.append(self.frame("response.output_item.added", output_index=self.writing.index, item=item))
            frames.append(
                self.frame(
                    "response.content_part.added",
                    item_id=item_id,
                    output_index=self.writing.index,
                    content_index=0,
                    part=render.output_text(""),
                )
            )
        self.writing.text += text
        frames.append(self._text_delta(self.writing, text))
        return frames

    def tool_call(self, record: dict[str, Any]) -> list[bytes]:
        frames = self._close_text("commentary") if self.writing is not None else []
        call_id = str(record.get("id") or "")
        if call_id in self.calls:
            return frames
        index = self.calls[call_id] = len(self.calls)
        call = render.function_call(ids.call_item(self.run_uid, index), record)
        frames += self._whole(call)
        if "result" in record or "error" in record:
            output = render.function_output(ids.output_item(self.run_uid, index), call_id, render.call_output(record))
            frames += self._whole(output)
        return frames

    # ---------------------------------------------------------------------------------------- the end

    def finish(self, run: Run, replies: Sequence[Any]) -> list[bytes]:
        """The items not streamed yet, the text being written closed with the stored text, then the end."""
        frames: list[bytes] = []
        final = render.output_of(run, replies)
        if self.writing is not None and self.writing.item_id not in {item["id"] for item in final}:
            frames += self._close_text(None)  # text no reply kept (the run was cancelled, its answer held back)
        for item in final:
            place = self.places.get(item["id"])
            if self.writing is not None and self.writing.item_id == item["id"]:
                text = item["content"][0]["text"] if item["content"] else ""
                if text.startswith(self.writing.text) and len(text) > len(self.writing.text):
                    rest = text[len(self.writing.text) :]
                    self.writing.text = text
                    frames.append(self._text_delta(self.writing, rest))
                frames += self._close_text(item.get("phase"), text)
            elif place is not None:
                self.output[place] = item  # streamed and done already: the stored item is the same
            elif item["type"] == "message":
                frames += self._whole_message(item)
            else:
                frames += self._whole(item)
        terminal = _TERMINAL.get(run.status)
        if terminal is not None:
            frames.append(self.frame(terminal, response=self._response(run)))
        return frames

    def timeout(self, seconds: float) -> bytes:
        return self.frame(
            "error",
            code="timeout",
            message=f"the agent is still answering after {seconds:g} s; GET /responses/{ids.response_id(self.run_uid)} "
            "shows the response when it is done",
            param=None,
        )

    def gone(self) -> bytes:
        return self.frame(
            "error", code="not_found", message="the conversation was deleted while the agent answered", param=None
        )

    # ---------------------------------------------------------------------------------------- pieces

    def _add(self, item: render.Item) -> int:
        index = len(self.output)
        self.output.append(item)
        self.places[item["id"]] = index
        return index

    def _text_delta(self, writing: _Text, text: str) -> bytes:
        return self.frame(
            "response.output_text.delta",
            item_id=writing.item_id,
            output_index=writing.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _close_text(self, phase: str | None, text: str | None = None) -> list[bytes]:
        writing = self.writing
        assert writing is not None
        self.writing = None
        return self._close(writing, phase, text)

    def _close(self, writing: _Text, phase: str | None, text: str | None = None) -> list[bytes]:
        final = writing.text if text is None else text
        item = render.assistant_message(writing.item_id, final, phase=phase)
        self.output[writing.index] = item
        where = {"item_id": writing.item_id, "output_index": writing.index, "content_index": 0}
        return [
            self.frame("response.output_text.done", **where, text=final, logprobs=[]),
            self.frame("response.content_part.done", **where, part=render.output_text(final)),
            self.frame("response.output_item.done", output_index=writing.index, item=item),
        ]

    def _whole(self, item: render.Item) -> list[bytes]:
        """An item that is complete when it is announced (a tool call, its result)."""
        index = self._add(item)
        frames = [self.frame("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})]
        if item["type"] == "function_call":
            frames.append(
                self.frame(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        frames.append(self.frame("response.output_item.done", output_index=index, item=item))
        return frames

    def _whole_message(self, item: render.Item) -> list[bytes]:
        """A message item stored whole (a FLOW agent's reply): its text as one delta."""
        text = item["content"][0]["text"] if item["content"] else ""
        added = render.assistant_message(item["id"], "", status="in_progress")
        writing = _Text(self._add(added), -1, item["id"], text)
        frames = [
            self.frame("response.output_item.added", output_index=writing.index, item=added),
            self.frame(
                "response.content_part.added",
                item_id=item["id"],
                output_index=writing.index,
                content_index=0,
                part=render.output_text(""),
            ),
        ]
        if text:
            frames.append(self._text_delta(writing, text))
        return frames + self._close(writing, item.get("phase"), text)


@dataclass(frozen=True, slots=True)
class Live:
    """What a stream reads from: the subscription taken before the run could start, and how to read the run."""

    sub: Subscription
    read_maker: async_sessionmaker[AsyncSession]
    workspace_id: int
    poll_s: float
    keepalive_s: float
    deadline_s: float


async def frames(events: ResponseEvents, run: Run, live: Live) -> AsyncIterator[bytes]:
    """The stream: its start, the run's events as they come, its end (at the latest ``live.deadline_s`` after the
    start). The caller ends the subscription when the response ends, however it ends."""
    deadline = time.monotonic() + live.deadline_s
    sub = live.sub
    yield b"".join(events.start(run))
    last_write = time.monotonic()
    while not sub.closed:
        sub.changed.clear()
        chunks = [f for envelope in sub.take_transient() for f in events.transient(envelope)]
        try:
            async with live.read_maker() as session:
                current = await runs.get_run(session, workspace_id=live.workspace_id, run_id=str(run.public_id))
                replies = (
                    await runs.run_replies(session, workspace_id=live.workspace_id, run=current)
                    if current.status in FINISHED
                    else None
                )
        except NotFound:  # the conversation was deleted meanwhile, and its runs with it
            yield b"".join([*chunks, events.gone()])
            return
        if replies is not None:
            yield b"".join([*chunks, *events.finish(current, replies)])
            return
        now = time.monotonic()
        if chunks:
            yield b"".join(chunks)
            last_write = now
        if now >= deadline:
            yield events.timeout(live.deadline_s)
            return
        if now - last_write >= live.keepalive_s:
            yield b": keep-alive\n\n"
            last_write = now
        await sub.wait(max(0.0, min(live.poll_s, deadline - now, live.keepalive_s - (now - last_write))))
