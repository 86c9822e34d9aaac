"""The ``openai`` provider: any server that speaks OpenAI's chat completions API.

OpenAI itself, and the servers that copy its API: vLLM, Ollama, llama.cpp's ``llama-server``, LM Studio,
LiteLLM, Together, Groq... Point ``THREADLINE_OPENAI_BASE_URL`` at one (see docs/providers.md). Calls go
through the official ``openai`` SDK, streamed, with the SDK's own retries off: a failed call becomes a
``ProviderError`` that says whether to try again, and the run's job does the retrying with its backoff.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import openai
import structlog
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from threadline.engines.providers.base import (
    ChatMessage,
    Completion,
    CompletionRequest,
    Provider,
    ProviderError,
    StreamItem,
    TextDelta,
    ToolCall,
    ToolSpec,
    UnsupportedFeature,
    Usage,
)
from threadline.engines.providers.tokens import MarginBook, base_model, count_chat_tokens, tokenizer_for

log = structlog.get_logger(__name__)

# Local servers want no key, but the SDK insists on one; this one is sent in their Authorization header.
NO_KEY = "no-key"

# Context windows of OpenAI's models, by longest matching prefix of the base model name. Anything else
# (the models of vLLM, Ollama...) gets the process default or the agent version's settings["context_window"],
# since the window such a server gives a model is its own configuration (Ollama's num_ctx, vLLM's
# --max-model-len), whatever the model could take.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 272_000,  # 400k in all, of which up to 128k output: the input may not pass 272k
    "gpt-5-chat": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.5": 128_000,
    "gpt-4o": 128_000,
    "chatgpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4-1106": 128_000,
    "gpt-4-0125": 128_000,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o1-preview": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "gpt-oss": 131_072,
}

# OpenAI's reasoning models refuse max_tokens and take max_completion_tokens; other servers mostly know only
# max_tokens, so the newer name is used just for these.
_MAX_COMPLETION_TOKENS_PREFIXES = ("o1", "o3", "o4", "gpt-5")

# A borrowed tokenizer's undercount is learnt from the first reports of a model, then left alone.
_OBSERVATIONS_PER_MODEL = 20


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's transport errors, which surface unwrapped when a stream breaks mid-way
    (openai 1.x and 2.x use ``httpx``, 3.x ``httpx2``)."""
    errors: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


class OpenAIProvider(Provider):
    """Chat completions over HTTP: streamed text, tool calls, usage and reasoning, errors sorted into retryable
    or not, tokens counted offline (:mod:`threadline.engines.providers.tokens`)."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        default_context_window: int = 8192,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self.base_url = base_url
        self._api_key = api_key  # kept only to scrub it from whatever a server echoes back
        self._client = client or AsyncOpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, timeout=timeout_s, max_retries=0
        )
        self._default_context_window = default_context_window
        self._margins = MarginBook()
        self._observed: dict[str, int] = {}
        self._stream_options_refused = False

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r})"

    # ------------------------------------------------------------------------------------------ stream

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        params = self._params(request)
        parts = _Parts()
        try:
            chunks = await self._open(params)
            try:
                async for chunk in chunks:
                    text = parts.add(chunk)
                    if text:
                        yield TextDelta(text)
            finally:
                await chunks.close()
        except openai.APIError as exc:
            raise self._error(exc) from None
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if parts.finish_reason is None:
            raise ProviderError(
                "the model server ended the stream before the answer was finished",
                retryable=True,
                code="provider_incomplete",
            )
        yield parts.completion(self._usage(request, parts))

    async def _open(self, params: dict[str, Any]) -> Any:
        """The chunk stream; asks for usage at its end unless this server refused ``stream_options`` before."""
        if not self._stream_options_refused:
            try:
                return await self._post({**params, "stream": True, "stream_options": {"include_usage": True}})
            except openai.BadRequestError as exc:
                if "stream_options" not in _error_text(exc):
                    raise
                self._stream_options_refused = True
                log.info("openai.stream_options_refused", server=_host(self.base_url))
        return await self._post({**params, "stream": True})

    async def _post(self, body: dict[str, Any]) -> Any:
        """``POST /chat/completions`` through the SDK's own client (its HTTP, errors, SSE parsing, chunk types),
        with the body we built already in the wire shape. ``chat.completions.create`` would first walk the
        body against its TypedDicts, which costs about half a millisecond per message of history: 20 ms for a
        long thread, on every model call."""
        return await self._client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": request.model, "messages": [_message(m) for m in request.messages]}
        if request.tools:
            params["tools"] = [{"type": "function", "function": _function(t)} for t in request.tools]
            params["tool_choice"] = tool_choice_param(request.tool_choice)
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            uses_new_name = base_model(request.model).startswith(_MAX_COMPLETION_TOKENS_PREFIXES)
            params["max_completion_tokens" if uses_new_name else "max_tokens"] = request.max_tokens
        return params

    def _usage(self, request: CompletionRequest, parts: _Parts) -> Usage:
        """The server's usage; when it sent none, our own count of the request and of the answer."""
        tokenizer = tokenizer_for(request.model)
        if parts.usage is not None:
            seen = self._observed.get(request.model, 0)
            if not tokenizer.exact and parts.usage.input_tokens and seen < _OBSERVATIONS_PER_MODEL:
                self._observed[request.model] = seen + 1
                counted = count_chat_tokens(request.messages, request.tools, tokenizer)
                self._margins.observe(request.model, counted=counted, reported=parts.usage.input_tokens)
            return parts.usage
        answer = "".join(parts.text) + "".join(c.name + "".join(c.arguments) for c in parts.calls.values())
        output = len(tokenizer.encoding.encode(answer, disallowed_special=()))
        if not tokenizer.exact:
            output = self._margins.apply(request.model, output)
        return Usage(self.count_tokens(request.messages, request.tools, model=request.model), output, estimated=True)

    # ------------------------------------------------------------------------------------------ errors

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return text[:500]

    def _error(self, exc: openai.APIError) -> ProviderError:
        server = _host(self.base_url)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(f"{server} did not answer in time", retryable=True, code="provider_timeout")
        if isinstance(exc, openai.APIConnectionError):
            return ProviderError(
                f"could not reach {server}, or lost the connection to it", retryable=True, code="provider_unavailable"
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc.status_code, exc.body)
        if isinstance(exc, openai.APIResponseValidationError):
            return ProviderError(
                f"{server} sent a response that is not a chat completion", retryable=False, code="provider_error"
            )
        # An error event inside a stream that had started well: the server's trouble, not the request's.
        detail = self._scrub(exc.message)
        return ProviderError(f"{server} failed mid-answer: {detail}", retryable=True, code="provider_error")

    def _status_error(self, status: int, body: object) -> ProviderError:
        error = body.get("error", body) if isinstance(body, dict) else {}
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or error.get("type") or "")
        detail = self._scrub(str(error.get("message") or "")) or "no detail"
        where = _host(self.base_url)
        if status == 401:
            # OpenAI's message quotes part of the key: say nothing of it.
            return ProviderError(
                f"{where} refused the API key (401); check THREADLINE_OPENAI_API_KEY",
                retryable=False,
                code="provider_auth_failed",
            )
        if status == 403:
            return ProviderError(
                f"{where} forbids this request (403): {detail}", retryable=False, code="provider_forbidden"
            )
        if status == 404:
            return ProviderError(
                f"{where} does not know the model or path (404): {detail}",
                retryable=False,
                code="provider_model_not_found",
            )
        if status == 429:
            if code == "insufficient_quota":  # a quota does not come back by waiting a few seconds
                return ProviderError(
                    f"{where} says the account is out of quota (429): {detail}",
                    retryable=False,
                    code="provider_quota_exceeded",
                )
            return ProviderError(
                f"{where} is rate limiting (429): {detail}", retryable=True, code="provider_rate_limited"
            )
        if status in (408, 409) or status >= 500:
            return ProviderError(f"{where} failed ({status}): {detail}", retryable=True, code="provider_server_error")
        if code == "context_length_exceeded":
            return ProviderError(
                f"the request does not fit the model's context ({status}): {detail}",
                retryable=False,
                code="context_length_exceeded",
            )
        return ProviderError(
            f"{where} refused the request ({status}): {detail}", retryable=False, code="provider_bad_request"
        )

    def _transport_error(self, exc: BaseException) -> ProviderError:
        kind = "timed out" if "Timeout" in type(exc).__name__ else f"broke off ({type(exc).__name__})"
        return ProviderError(
            f"the connection to {_host(self.base_url)} {kind} mid-answer",
            retryable=True,
            code="provider_timeout" if "Timeout" in type(exc).__name__ else "provider_unavailable",
        )

    # ------------------------------------------------------------------------------------------ sizes

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...] = (), *, model: str | None = None
    ) -> int:
        tokenizer = tokenizer_for(model)
        raw = count_chat_tokens(messages, tools, tokenizer)
        return raw if tokenizer.exact else self._margins.apply(model, raw)

    def context_window(self, model: str) -> int:
        return known_context_window(model) or self._default_context_window

    def check(self, *, model: str | None, tools: list[dict[str, Any]], settings: dict[str, Any]) -> None:
        if not (model or settings.get("model")):
            raise UnsupportedFeature("the openai provider needs a model (e.g. 'gpt-4o-mini', or the name vLLM serves)")

    async def aclose(self) -> None:
        await self._client.close()


def known_context_window(model: str) -> int | None:
    """The context window of an OpenAI model, or None for a model this table does not know."""
    name = base_model(model)
    matches = [prefix for prefix in CONTEXT_WINDOWS if name.startswith(prefix)]
    return CONTEXT_WINDOWS[max(matches, key=len)] if matches else None


def tool_choice_param(choice: str) -> str | dict[str, Any]:
    """``auto``/``none``/``required`` as they are; any other value names the one tool the model must call."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _function(tool: ToolSpec) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "assistant":
        # Never null: OpenAI accepts null beside tool_calls, llama.cpp's server (and others) refuse it.
        out["content"] = message.content or ""
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
    else:
        out["content"] = message.content or ""
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
    elif message.name:
        out["name"] = message.name
    return out


def _host(base_url: str) -> str:
    """The server's host and port, for messages: never the path or any credentials in the URL."""
    parts = urlsplit(base_url)
    host = parts.hostname or "the model server"
    return f"{host}:{parts.port}" if parts.port else host


def _error_text(exc: openai.APIStatusError) -> str:
    return json.dumps(exc.body) if exc.body is not None else str(exc.message)


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Parts:
    """A streamed answer put back together, chunk by chunk."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: dict[int, _CallParts] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None
    _last_index: int = 0

    def add(self, chunk: Any) -> str:
        """Take one ``chat.completion.chunk``; return the answer text it adds."""
        if chunk.usage is not None:
            self.usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        added = []
        for choice in chunk.choices or ():
            if choice.index:  # n=1: any other choice is not ours
                continue
            delta = choice.delta
            if delta is not None:
                extra = delta.model_extra or {}
                reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                if isinstance(reasoning, str):
                    self.reasoning.append(reasoning)
                if delta.content:
                    self.text.append(delta.content)
                    added.append(delta.content)
                for call in delta.tool_calls or ():
                    self._add_call(call)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return "".join(added)

    def _add_call(self, call: Any) -> None:
        # OpenAI sends index, id, type and name in a call's first delta and argument fragments after it,
        # under the same index. A server that leaves the index out starts a new call with each new id.
        index = call.index
        if index is None:
            known = {parts.id for parts in self.calls.values()}
            index = len(self.calls) if call.id and call.id not in known else self._last_index
        self._last_index = index
        parts = self.calls.setdefault(index, _CallParts())
        if call.id and not parts.id:
            parts.id = call.id
        if call.function is not None:
            if call.function.name and not parts.name:
                parts.name = call.function.name
            if call.function.arguments:
                parts.arguments.append(call.function.arguments)

    def completion(self, usage: Usage) -> Completion:
        calls = tuple(
            ToolCall(id=p.id or f"call_{uuid.uuid4().hex[:24]}", name=p.name, arguments="".join(p.arguments))
            for _, p in sorted(self.calls.items())
        )
        finish = self.finish_reason
        if calls and finish in (None, "stop"):  # Ollama and others say "stop" after tool calls
            finish = "tool_calls"
        return Completion(
            text="".join(self.text),
            tool_calls=calls,
            usage=usage,
            finish_reason=finish,
            reasoning="".join(self.reasoning) or None,
        )
