"""The flow interpreter: one turn of a scripted conversation, as a pure function of its inputs.

``advance(flow, state, inbound, context=..., http=...)`` runs the flow from where ``state`` left it, with
the end user's messages since the last turn, until it waits for the next reply, ends, or hands off. It
returns the messages to send, the new state and the actions for the caller (``Handoff``, ``End``). It
touches no database and no clock: the caller stores the state per thread (``FlowState.to_json()``),
inserts the messages and applies the actions. The only outside effect is the ``http`` callable of
``http`` nodes, which the caller injects.

Rules of a turn:

- No state (a new thread), or a flow that ended or handed off with ``restart`` (the default): the flow
  starts at ``start``. The messages that started it are the trigger: the last one is ``input`` for the
  nodes before the first question, and none of them answers a question.
- Waiting at an ``ask``: the inbound messages answer it one by one, in order. A message left over when
  the flow ends is dropped, not replayed.
- Nothing inbound while waiting, or a finished flow without ``restart``: nothing happens.
- At most ``max_steps`` nodes run per turn. Past that (a loop that never asks), the turn fails with
  ``error.code == "step_limit"``: no outputs, no actions, and ``state`` is the state passed in, so the
  caller records the failure and stores nothing. HTTP calls made before the failure did happen.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from threadline.engines.flows.http import HttpCaller, HttpRequest, HttpResult, HttpxCaller
from threadline.engines.flows.schema import (
    RESERVED_VARIABLES,
    AskNode,
    BranchNode,
    Button,
    Case,
    EndNode,
    Flow,
    HandoffNode,
    HttpNode,
    SendNode,
    SetNode,
    compiled,
)
from threadline.engines.flows.templating import MISSING, is_blank, lookup, render, render_json, to_text
from threadline.kit.schemas import json_size
from threadline.models.enums import MessageType

MAX_STEPS: Final = 50
MAX_INPUT_CHARS: Final = 16_000
"""An end user's reply is stored (and matched) up to this many characters."""
MAX_VALUE_BYTES: Final = 16 * 1024
"""The largest value an ``http`` node may save into one variable (serialized as JSON)."""
MAX_STATE_BYTES: Final = 512 * 1024
_VARIABLE_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


# ------------------------------------------------------------------------------------------------- state


class FlowStatus(StrEnum):
    WAITING = "waiting"  # at an ask node, for the end user's reply
    ENDED = "ended"
    HANDED_OFF = "handed_off"


class OfferedButton(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str
    payload: str


class LastInput(BaseModel):
    """The end user's latest message, as the flow sees it (``{{input.text}}``, payload branches)."""

    model_config = ConfigDict(extra="ignore")

    text: str = ""
    type: str = MessageType.TEXT.value
    payload: str | None = None
    title: str | None = None
    media_url: str | None = None
    button: bool = Field(default=False, description="It picked one of the buttons the flow offered.")


class FlowState(BaseModel):
    """Where a thread's flow stands between turns; plain JSON (``to_json``/``from_json``), so it survives
    restarts in whatever column the caller keeps it."""

    model_config = ConfigDict(extra="ignore")

    format: Literal[1] = 1
    status: FlowStatus
    node: str = Field(description="The ask node waiting for a reply, or the node the flow ended at.")
    variables: dict[str, Any] = Field(default_factory=dict)
    input: LastInput | None = None
    buttons: list[OfferedButton] = Field(
        default_factory=list, description="The buttons last offered: a reply may pick one by payload or title."
    )
    attempts: int = Field(default=0, description="Invalid replies to the waiting question so far.")
    steps: int = Field(default=0, description="Nodes run in this thread, over all turns.")
    turns: int = 0

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowState:
        """The state stored by ``to_json``; ``pydantic.ValidationError`` (a ValueError) if it is not one."""
        return cls.model_validate(data)


# --------------------------------------------------------------------------------------- inputs, outputs


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message of the end user. ``payload`` is set when a button was pressed; on channels without
    buttons (SMS) the end user types a button's title or payload instead, which the engine matches."""

    text: str = ""
    type: MessageType = MessageType.TEXT
    payload: str | None = None
    title: str | None = None
    media_url: str | None = None

    @classmethod
    def from_message(
        cls,
        *,
        type: MessageType | str,
        content: str | None,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        media_url: str | None = None,
    ) -> Inbound:
        """From a stored message: a ``button_reply`` block (``{"type": "button_reply", "payload": ...,
        "title": ...}``) gives the payload; a press that carried no text reads as its title."""
        payload = title = None
        for block in blocks or ():
            if isinstance(block, Mapping) and block.get("type") == "button_reply":
                raw_payload, raw_title = block.get("payload"), block.get("title")
                title = str(raw_title) if raw_title is not None else None
                payload = str(raw_payload) if raw_payload is not None else title
                break
        try:
            kind = MessageType(type)
        except ValueError:
            kind = MessageType.TEXT
        return cls(text=content or title or "", type=kind, payload=payload, title=title, media_url=media_url)


@dataclass(frozen=True, slots=True)
class FlowOutput:
    """A message for the end user, in the fields of a message: ``type`` (a ``MessageType`` value),
    ``content`` (text), ``blocks`` (structured content, None for plain text), ``media_url``; ``node`` made it."""

    type: MessageType
    content: str
    blocks: list[dict[str, Any]] | None
    media_url: str | None
    node: str


@dataclass(frozen=True, slots=True)
class Handoff:
    """Hand the thread to a human: the caller stops the AI (``active`` false), assigns and tags."""

    node: str
    reason: str | None
    assign_to: str | None  # a user id or email
    tags: tuple[str, ...]
    kind: Literal["handoff"] = "handoff"


@dataclass(frozen=True, slots=True)
class End:
    node: str
    kind: Literal["end"] = "end"


FlowAction = Handoff | End


@dataclass(frozen=True, slots=True)
class FlowRunError:
    """Why a turn failed: ``step_limit`` (a loop that never waits), ``state_invalid`` (a state that does not
    fit this flow), ``state_too_large``."""

    code: str
    message: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class HttpCall:
    """What an ``http`` node did, for the run's record."""

    node: str
    method: str
    url: str
    status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class FlowTurn:
    """The result of ``advance``. On error: no outputs, no actions, ``state`` is the state passed in."""

    outputs: tuple[FlowOutput, ...]
    state: FlowState | None
    actions: tuple[FlowAction, ...] = ()
    error: FlowRunError | None = None
    visited: tuple[str, ...] = ()  # the nodes run this turn, in order
    http_calls: tuple[HttpCall, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def end_user_context(
    *, display_name: str | None, address: str | None, channel: str | None, info: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``context`` the run loop passes: the end user as ``{{user.display_name}}``, ``{{user.info.plan}}``."""
    return {"user": {"display_name": display_name, "address": address, "channel": channel, "info": dict(info or {})}}


# ------------------------------------------------------------------------------------------------ advance


async def advance(
    flow: Flow,
    state: FlowState | None,
    inbound: Sequence[Inbound],
    *,
    context: Mapping[str, Any],
    http: HttpCaller | None = None,
    max_steps: int = MAX_STEPS,
) -> FlowTurn:
    """Run one turn of ``flow`` (see the module's docstring). ``context`` holds read-only values the flow's
    placeholders may use (``end_user_context``); a flow variable of the same name hides one. ``http``
    defaults to ``HttpxCaller()`` (public addresses only). Never raises for anything the flow or the
    end user does; deterministic given the same ``http`` answers."""
    turn = _Turn(flow, state, context, http if http is not None else HttpxCaller(), max_steps)
    try:
        return await turn.run(deque(inbound))
    except _Failed as exc:
        return FlowTurn((), state, error=exc.error, visited=tuple(turn.visited), http_calls=tuple(turn.http_calls))


class _Failed(Exception):
    def __init__(self, error: FlowRunError) -> None:
        super().__init__(error.message)
        self.error = error


class _Turn:
    state: FlowState  # set when the turn starts (a copy: the state passed in is never changed)

    def __init__(
        self, flow: Flow, state: FlowState | None, context: Mapping[str, Any], http: HttpCaller, max_steps: int
    ) -> None:
        self.flow = flow
        self.initial = state
        self.context = context
        self.http = http
        self.max_steps = max_steps
        self.outputs: list[FlowOutput] = []
        self.actions: list[FlowAction] = []
        self.visited: list[str] = []
        self.http_calls: list[HttpCall] = []

    async def run(self, queue: deque[Inbound]) -> FlowTurn:
        previous = self.initial
        if previous is not None and previous.status is FlowStatus.WAITING:
            if not queue:
                return FlowTurn((), previous)
            node = self.flow.nodes.get(previous.node)
            if not isinstance(node, AskNode):
                raise _Failed(
                    FlowRunError(
                        "state_invalid", f"the state waits at {previous.node!r}, which is no ask node of this flow"
                    )
                )
            self.state = previous.model_copy(deep=True)
            node_id: str | None = previous.node
            resuming = True
        else:
            if previous is not None and not self.flow.restart:
                return FlowTurn((), previous)
            trigger = queue[-1] if queue else None
            queue.clear()  # the messages that started the flow answer no question
            self.state = self._fresh(previous, trigger)
            node_id = self.flow.start
            resuming = False
        self.state.turns += 1
        while node_id is not None:
            node_id = await self._run_node(node_id, queue, resuming=resuming)
            resuming = False
        if json_size(self.state.to_json()) > MAX_STATE_BYTES:
            raise _Failed(FlowRunError("state_too_large", f"the flow's variables exceed {MAX_STATE_BYTES} bytes"))
        return FlowTurn(
            tuple(self.outputs),
            self.state,
            tuple(self.actions),
            visited=tuple(self.visited),
            http_calls=tuple(self.http_calls),
        )

    def _fresh(self, previous: FlowState | None, trigger: Inbound | None) -> FlowState:
        variables = render_json(self.flow.variables, self.context)
        if previous is not None:
            variables.update(previous.variables)  # what the end user told us last time still holds
        state = FlowState(
            status=FlowStatus.WAITING,
            node=self.flow.start,
            variables=variables,
            steps=previous.steps if previous else 0,
            turns=previous.turns if previous else 0,
        )
        if trigger is not None:
            state.input = _as_input(trigger, [])
        return state

    # -------------------------------------------------------------------------------------------- nodes

    async def _run_node(self, node_id: str, queue: deque[Inbound], *, resuming: bool) -> str | None:
        """Runs one node; the next node's id, or None when the turn is over (waiting or finished)."""
        self.visited.append(node_id)
        if len(self.visited) > self.max_steps:
            trail = ", ".join(self.visited[-6:])
            raise _Failed(
                FlowRunError(
                    "step_limit",
                    f"the flow ran {self.max_steps} nodes in one turn without waiting for the end user "
                    f"(a loop?); the last were: {trail}",
                    node=node_id,
                )
            )
        self.state.steps += 1
        node = self.flow.nodes[node_id]
        if isinstance(node, SendNode):
            self._send(node_id, node)
            return node.next
        if isinstance(node, AskNode):
            return self._ask(node_id, node, queue, resuming=resuming)
        if isinstance(node, BranchNode):
            return self._branch(node)
        if isinstance(node, HttpNode):
            return await self._http(node_id, node)
        if isinstance(node, SetNode):
            for name, value in node.variables.items():
                self.state.variables[name] = render_json(value, self._scope())
            return node.next
        if isinstance(node, HandoffNode):
            scope = self._scope()
            self._say(node_id, node.message)
            reason = render(node.reason, scope) if node.reason is not None else None
            self.actions.append(Handoff(node_id, reason or None, node.assign_to, tuple(node.tags)))
            self._finish(node_id, FlowStatus.HANDED_OFF)
            return None
        assert isinstance(node, EndNode)
        self._say(node_id, node.message)
        self.actions.append(End(node_id))
        self._finish(node_id, FlowStatus.ENDED)
        return None

    def _finish(self, node_id: str, status: FlowStatus) -> None:
        self.state.status = status
        self.state.node = node_id
        self.state.buttons = []
        self.state.attempts = 0

    def _ask(self, node_id: str, node: AskNode, queue: deque[Inbound], *, resuming: bool) -> str | None:
        if not resuming:
            self.state.attempts = 0
            if node.text is not None:
                self._text(node_id, node.text, node.buttons)
        check = node.validation
        while queue:
            reply = _as_input(queue.popleft(), self.state.buttons)
            self.state.input = reply
            if check is None or _valid(reply, check.regex, check.buttons):
                if node.var is not None:
                    self.state.variables[node.var] = _value(reply)
                self.state.buttons = []
                self.state.attempts = 0
                return node.next
            self.state.attempts += 1
            if check.max_attempts is not None and self.state.attempts >= check.max_attempts:
                self.state.buttons = []
                self.state.attempts = 0
                return check.on_invalid
            self._text(node_id, check.message, node.buttons)
        self.state.status = FlowStatus.WAITING
        self.state.node = node_id
        return None

    def _branch(self, node: BranchNode) -> str:
        for case in node.cases:
            if self._holds(case):
                return case.next
        return node.default

    def _holds(self, case: Case) -> bool:
        reply = self.state.input or LastInput()
        text = reply.text
        if case.payload is not None:
            wanted = {p.casefold() for p in case.payload}
            given = reply.payload if reply.payload is not None else text.strip()
            return given.casefold() in wanted
        if case.keywords is not None:
            return any(_keyword(word).search(text) for word in case.keywords)
        if case.regex is not None:
            match = compiled(case.regex).search(text)
            if match is None:
                return False
            for name, value in match.groupdict().items():
                if value is not None and _VARIABLE_RE.match(name) and name not in RESERVED_VARIABLES:
                    self.state.variables[name] = value
            return True
        assert case.var is not None
        value = lookup(self._scope(), case.var)
        tests = case.model_fields_set
        if "exists" in tests:
            return (not is_blank(value)) == case.exists
        if "equals" in tests:
            return is_blank(value) if case.equals is None else _norm(value) == _norm(case.equals)
        part = _norm(case.contains)
        if isinstance(value, list):
            return any(_norm(item) == part for item in value)
        return not is_blank(value) and part in _norm(value)

    async def _http(self, node_id: str, node: HttpNode) -> str:
        scope = self._scope()
        request = HttpRequest(
            method=node.method,
            url=render(node.url, scope, escape=_url_value),
            headers={name: _header_value(render(value, scope)) for name, value in node.headers.items()},
            json=render_json(node.body, scope) if node.body is not None else None,
            timeout=node.timeout,
        )
        result = await self._call(request)
        error = result.error if not result.ok else None
        saved: dict[str, Any] = {}
        if error is None:
            saved, error = _extract(result, node.save)
        self.http_calls.append(HttpCall(node_id, request.method, request.url, result.status, error))
        if error is not None:
            return node.on_error or node.next
        self.state.variables.update(saved)
        return node.next

    async def _call(self, request: HttpRequest) -> HttpResult:
        try:
            # A margin over the request's own timeout: a stand-in caller that hangs cannot hold the turn.
            return await asyncio.wait_for(self.http(request), request.timeout + 5)
        except TimeoutError:
            return HttpResult(None, error=f"timed out after {request.timeout:g} s")
        except Exception as exc:  # an injected caller that broke its promise not to raise
            return HttpResult(None, error=f"{type(exc).__name__}: {exc}"[:500])

    # ----------------------------------------------------------------------------------------- messages

    def _send(self, node_id: str, node: SendNode) -> None:
        scope = self._scope()
        if node.text is not None:
            self._text(node_id, node.text, node.buttons)
        elif node.template is not None:
            template = node.template
            params: list[str] | dict[str, str]
            if isinstance(template.params, dict):
                params = {k: render(v, scope) for k, v in template.params.items()}
            else:
                params = [render(v, scope) for v in template.params]
            block = {"type": "template", "name": template.name, "language": template.language, "params": params}
            content = render(template.text, scope) if template.text is not None else ""
            self._emit(MessageType.TEMPLATE, content, [block], None, node_id)
        elif node.media is not None:
            url = render(node.media.url, scope)
            caption = render(node.media.caption, scope) if node.media.caption is not None else ""
            blocks: list[dict[str, Any]] = [{"type": node.media.type, "url": url}]
            if caption:
                blocks.append({"type": "text", "text": caption})
            self._emit(MessageType(node.media.type), caption, blocks, url, node_id)

    def _text(self, node_id: str, text: str, buttons: list[Button]) -> None:
        scope = self._scope()
        content = render(text, scope)
        if not buttons:
            if content:
                self._emit(MessageType.TEXT, content, None, None, node_id)
            return
        offered = []
        for button in buttons:
            title = render(button.title, scope)
            offered.append(OfferedButton(title=title, payload=button.payload or title))
        self.state.buttons = offered
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": content},
            {"type": "buttons", "buttons": [b.model_dump() for b in offered]},
        ]
        self._emit(MessageType.BUTTON, content, blocks, None, node_id)

    def _say(self, node_id: str, message: str | None) -> None:
        if message is not None:
            self._text(node_id, message, [])

    def _emit(
        self, type_: MessageType, content: str, blocks: list[dict[str, Any]] | None, url: str | None, node_id: str
    ) -> None:
        self.outputs.append(FlowOutput(type_, content, blocks, url, node_id))

    def _scope(self) -> dict[str, Any]:
        reply = self.state.input.model_dump() if self.state.input is not None else {}
        return {**self.context, **self.state.variables, "input": reply}


# -------------------------------------------------------------------------------------------- helpers


def _as_input(message: Inbound, offered: list[OfferedButton]) -> LastInput:
    """The message as the flow sees it; a press, or a typed title or payload, of an offered button picks it."""
    text = message.text[:MAX_INPUT_CHARS]
    picked: OfferedButton | None = None
    if message.payload is not None:
        picked = next((b for b in offered if b.payload.casefold() == message.payload.casefold()), None)
    elif typed := text.strip().casefold():
        picked = next((b for b in offered if typed in (b.title.casefold(), b.payload.casefold())), None)
    payload = picked.payload if picked else message.payload
    title = picked.title if picked else message.title
    return LastInput(
        text=text,
        type=message.type.value,
        payload=payload,
        title=title,
        media_url=message.media_url,
        button=picked is not None,
    )


def _valid(reply: LastInput, regex: str | None, buttons: bool) -> bool:
    """Either check passing is enough ("pick a button or type a date")."""
    if buttons and reply.button:
        return True
    return regex is not None and compiled(regex).fullmatch(reply.text.strip()) is not None


def _value(reply: LastInput) -> str:
    if reply.payload is not None:
        return reply.payload
    return reply.text.strip() or reply.media_url or ""


@functools.lru_cache(maxsize=1024)
def _keyword(word: str) -> re.Pattern[str]:
    """Whole words, any case; the words of a phrase may be separated by any whitespace."""
    body = r"\s+".join(re.escape(part) for part in word.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def _norm(value: Any) -> str:
    return "" if value is MISSING else to_text(value).strip().casefold()


def _url_value(value: str) -> str:
    return quote(value, safe="")


def _header_value(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ").strip()


def _extract(result: HttpResult, save: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """The variables ``save`` asks for, or an error (no JSON answer, a value too large to keep)."""
    saved: dict[str, Any] = {}
    for name, path in save.items():
        if path == "$status":
            saved[name] = result.status
            continue
        if not result.is_json:
            return {}, "the answer is not JSON"
        value = result.body if path == "$" else lookup(result.body, path)
        if value is MISSING:
            value = None
        try:
            size = json_size(value)
        except ValueError:
            return {}, f"{path}: not a JSON value"
        if size > MAX_VALUE_BYTES:
            return {}, f"{path}: larger than {MAX_VALUE_BYTES} bytes"
        saved[name] = value
    return saved, None
