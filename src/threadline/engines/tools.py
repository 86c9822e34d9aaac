"""Tools an agent version declares, and running them.

Two kinds. HTTP tools call a URL with the model's arguments (JSON body, or query for GET) and give the
model the response; outbound calls go through the SSRF guard the webhooks use. Built-in tools act on the
thread: ``handoff_to_human`` (the thread goes to a human: inactive, optionally assigned and tagged),
``add_tag`` and ``end_conversation``. Their effects are not applied while the model is still thinking:
they are collected as actions and applied in the transaction that stores the reply, so a run that
fails or is cancelled changes nothing.

A tool that fails (timeout, HTTP error, bad arguments) does not fail the run: the error is recorded in
the reply's ``tool_calls`` and given back to the model, which can apologise or try something else.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema

from threadline.engines.providers.base import ToolCall, ToolSpec

NAME = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MAX_RESULT_CHARS = 16_000


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpTool(_Tool):
    type: Literal["http"]
    name: NAME
    description: Annotated[str, Field(max_length=4000)] = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: Annotated[str, Field(max_length=2048)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Annotated[str, Field(max_length=4096)]] = Field(default_factory=dict)
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10
    # Set by the server, never by clients: the header values, encrypted (kit.secrets). ``headers`` then keeps
    # only the names, with redacted values, so that neither a response nor a database dump shows them.
    headers_encrypted: SkipJsonSchema[str | None] = None


class HandoffTool(_Tool):
    type: Literal["handoff_to_human"]
    name: NAME = "handoff_to_human"
    description: str = "Hand the conversation to a human colleague when you cannot help or the person asks for one."
    assign_to: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, description="User ids.")
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, description="Tag ids.")


class AddTagTool(_Tool):
    type: Literal["add_tag"]
    name: NAME = "add_tag"
    description: str = "Tag this conversation."
    allowed: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, description="Tag names the model may use; empty: any tag of the workspace."
    )


class EndTool(_Tool):
    type: Literal["end_conversation"]
    name: NAME = "end_conversation"
    description: str = "End the conversation when the person's request is fully handled and they said goodbye."


ToolDefinition = Annotated[HttpTool | HandoffTool | AddTagTool | EndTool, Field(discriminator="type")]
_definitions = TypeAdapter(list[ToolDefinition])


def parse_tools(raw: list[dict[str, Any]]) -> list[HttpTool | HandoffTool | AddTagTool | EndTool]:
    """Validated tool definitions (raises pydantic's ValidationError); names must be unique."""
    tools = _definitions.validate_python(raw)
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"tool names must be unique: {', '.join(duplicates)}")
    return tools


def specs(tools: list[Any]) -> tuple[ToolSpec, ...]:
    out = []
    for tool in tools:
        if isinstance(tool, HttpTool):
            out.append(ToolSpec(tool.name, tool.description, tool.parameters))
        elif isinstance(tool, HandoffTool):
            out.append(
                ToolSpec(
                    tool.name,
                    tool.description,
                    {
                        "type": "object",
                        "properties": {"reason": {"type": "string", "description": "Why a human should take over."}},
                        "required": ["reason"],
                    },
                )
            )
        elif isinstance(tool, AddTagTool):
            name: dict[str, Any] = {"type": "string", "description": "The tag's name."}
            if tool.allowed:
                name["enum"] = list(tool.allowed)
            out.append(
                ToolSpec(
                    tool.name, tool.description, {"type": "object", "properties": {"name": name}, "required": ["name"]}
                )
            )
        elif isinstance(tool, EndTool):
            out.append(
                ToolSpec(tool.name, tool.description, {"type": "object", "properties": {"reason": {"type": "string"}}})
            )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Handoff:
    reason: str
    assign_to: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AddTag:
    name: str


@dataclass(frozen=True, slots=True)
class EndConversation:
    reason: str = ""


Action = Handoff | AddTag | EndConversation


@dataclass(slots=True)
class ToolOutcome:
    record: dict[str, Any]  # what the reply's tool_calls keeps: id, name, arguments, result, error, duration_ms
    content: str  # what the model is told
    actions: list[Action] = field(default_factory=list)


class ToolRunner:
    def __init__(self, tools: list[Any], *, client: httpx.AsyncClient, box: Any = None) -> None:
        self.tools = {t.name: t for t in tools}
        self.client = client
        self.box = box

    async def run(self, call: ToolCall, *, idempotency_key: str | None = None) -> ToolOutcome:
        """Run one call. HTTP tools send ``idempotency_key`` as the ``Idempotency-Key`` header: the same on
        every attempt of the run, so that a receiver can tell a call it has already handled."""
        started = time.perf_counter()
        record: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": call.arguments}
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
            record["arguments"] = arguments
        except ValueError as exc:
            return self._failed(record, started, f"invalid arguments: {exc}")
        tool = self.tools.get(call.name)
        if tool is None:
            return self._failed(record, started, f"no tool named '{call.name}'")
        try:
            result, actions = await self._dispatch(tool, arguments, idempotency_key)
        except ToolFailed as exc:
            return self._failed(record, started, str(exc))
        record["result"] = result
        record["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
        return ToolOutcome(record, content[:MAX_RESULT_CHARS], actions)

    def _failed(self, record: dict[str, Any], started: float, error: str) -> ToolOutcome:
        record["error"] = error
        record["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return ToolOutcome(record, json.dumps({"error": error}))

    async def _dispatch(
        self, tool: Any, arguments: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[Any, list[Action]]:
        if isinstance(tool, HttpTool):
            return await self._http(tool, arguments, idempotency_key), []
        if isinstance(tool, HandoffTool):
            reason = str(arguments.get("reason") or "the agent asked for a human")
            return (
                "Done: a human colleague takes over this conversation now. Tell the person briefly.",
                [Handoff(reason, tuple(tool.assign_to), tuple(tool.tags))],
            )
        if isinstance(tool, AddTagTool):
            name = str(arguments.get("name") or "").strip()
            if not name:
                raise ToolFailed("a tag name is required")
            if tool.allowed and name not in tool.allowed:
                raise ToolFailed(f"'{name}' is not one of the allowed tags: {', '.join(tool.allowed)}")
            return f"Tagged '{name}'.", [AddTag(name)]
        if isinstance(tool, EndTool):
            return "The conversation is marked as ended.", [EndConversation(str(arguments.get("reason") or ""))]
        raise ToolFailed(f"tool type {type(tool).__name__} cannot run")  # pragma: no cover

    async def _http(self, tool: HttpTool, arguments: dict[str, Any], idempotency_key: str | None = None) -> Any:
        try:
            headers = open_headers(tool, self.box)
        except Exception:
            raise ToolFailed(f"{tool.name}: its headers cannot be decrypted (were the secret keys changed?)") from None
        if idempotency_key is not None and not any(h.lower() == "idempotency-key" for h in headers):
            headers["Idempotency-Key"] = idempotency_key
        kwargs: dict[str, Any] = {"headers": headers, "timeout": tool.timeout_s}
        if tool.method == "GET":
            kwargs["params"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
        else:
            kwargs["json"] = arguments
        try:
            response = await self.client.request(tool.method, tool.url, **kwargs)
        except httpx.TimeoutException:
            raise ToolFailed(f"{tool.name}: no answer within {tool.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ToolFailed(f"{tool.name}: the request failed ({type(exc).__name__}: {exc})") from None
        body: Any
        try:
            body = response.json()
        except ValueError:
            body = response.text[:MAX_RESULT_CHARS]
        if response.status_code >= 400:
            raise ToolFailed(f"{tool.name}: HTTP {response.status_code}: {str(body)[:2000]}")
        return body


class ToolFailed(Exception):
    pass


def seal_headers(tools: list[dict[str, Any]], box: Any) -> list[dict[str, Any]]:
    """HTTP tools with their header values encrypted into ``headers_encrypted`` (names kept, values redacted)."""
    sealed = []
    for tool in tools:
        headers = tool.get("headers")
        if tool.get("type") == "http" and isinstance(headers, dict) and headers:
            tool = {
                **tool,
                "headers": dict.fromkeys(headers, REDACTED),
                "headers_encrypted": box.encrypt_json(headers).decode("ascii"),
            }
        sealed.append(tool)
    return sealed


def open_headers(tool: HttpTool, box: Any) -> dict[str, str]:
    """The header values an HTTP tool sends (decrypted when they were sealed)."""
    if tool.headers_encrypted is None:
        return dict(tool.headers)
    opened: dict[str, str] = box.decrypt_json(tool.headers_encrypted.encode("ascii"))
    return opened


REDACTED = "[redacted]"
