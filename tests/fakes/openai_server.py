"""An OpenAI-compatible chat completions server on 127.0.0.1, scripted by the test that runs it.

The code under test talks to it through its ordinary HTTP client (the ``openai`` SDK) and cannot tell it from
OpenAI, vLLM or Ollama: ``POST /v1/chat/completions`` streams Server-Sent Events exactly as OpenAI does
(``chat.completion.chunk`` objects: the role first, content deltas, tool-call deltas with index, id, type and
name first and the arguments in fragments, the finish reason, a last chunk with empty ``choices`` and the
usage when ``stream_options.include_usage`` asks for it, then ``data: [DONE]``), answers non-streaming
requests with a ``chat.completion``, fails with OpenAI's error body, and lists models at ``GET /v1/models``.

    with OpenAIStandIn() as server:
        server.script(Reply(text="Hello there", chunks=3), Reply(tool_calls=[ToolCallReply("lookup", '{"q": 1}')]))
        provider = OpenAIProvider(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.requests[0].messages[-1]["content"] == "Hi"

Each request takes the next scripted reply (a :class:`Reply`, an :class:`ErrorReply`, a :class:`Forward`, or
a function of the :class:`ReceivedRequest` returning one); with none left it takes ``server.default`` (a reply
or a function), and with no default it fails with a 400 ``no_scripted_reply``, so a test that sends more than it
scripted sees it at once (400 is not retried by well-behaved clients).

It refuses what real servers refuse, before any script is used (``strict=False`` turns this off):

- a top-level field that OpenAI does not know: 400 ``Unrecognized request argument supplied: <name>``, as
  OpenAI answers (the known fields are those of the ``openai`` SDK's ``CompletionCreateParams``);
- an assistant message whose ``content`` is ``null`` (beside ``tool_calls`` or not): 500 with the validation
  error llama-cpp-python's server (``python -m llama_cpp.server``) answers, which declares ``content`` as an
  optional string that may be left out but not be null. OpenAI accepts the null; llama.cpp's server does not.

With ``upstream`` (the ``/v1`` base URL of a real server), a :class:`Forward` answer relays the request there
and streams its answer back unchanged: a real server behind a stand-in that can fail on cue. Such a relay
leaves refusing to the real server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from openai.types.chat import completion_create_params

__all__ = ["ErrorReply", "Forward", "OpenAIStandIn", "ReceivedRequest", "Reply", "ToolCallReply"]

# Every top-level field of a chat completion request that OpenAI knows, as the SDK declares them.
KNOWN_FIELDS = frozenset(completion_create_params.CompletionCreateParamsStreaming.__annotations__) | frozenset(
    completion_create_params.CompletionCreateParamsNonStreaming.__annotations__
)


@dataclass(frozen=True)
class ToolCallReply:
    """One tool call the model makes: streamed as a first delta with index, id, type and name (arguments
    ``""``), then the arguments split into ``fragments`` pieces."""

    name: str
    arguments: str = "{}"
    id: str | None = None  # default: call_<n>
    fragments: int = 3


@dataclass(frozen=True)
class Reply:
    """A successful answer.

    ``text`` is streamed in ``chunks`` content deltas (split as evenly as possible; whitespace is kept);
    ``reasoning`` goes first, in ``reasoning_field`` deltas (``reasoning_content`` as vLLM and DeepSeek send
    it, or ``reasoning``). ``usage`` is (prompt_tokens, completion_tokens); left out, it is made up from the
    request (4 per message plus its words) and the number of chunks. ``send_usage=False`` plays a server
    that ignores ``stream_options``. ``delay_s`` passes before the response starts (status line included),
    ``chunk_delay_s`` between chunks; ``disconnect_after`` drops the connection after that many chunks,
    without ``[DONE]``.
    """

    text: str = ""
    chunks: int = 1
    tool_calls: Sequence[ToolCallReply | tuple[str, str]] = ()
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    finish_reason: str | None = None  # default: "tool_calls" when there are any, else "stop"
    usage: tuple[int, int] | None = None
    send_usage: bool = True
    model: str | None = None  # default: the requested model
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    disconnect_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    429: "requests",
}


@dataclass(frozen=True)
class ErrorReply:
    """A failure with OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``."""

    status: int
    message: str = "The stand-in was told to fail."
    type: str | None = None  # default: what OpenAI uses for the status
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def unauthorized(cls, message: str = "Incorrect API key provided.") -> ErrorReply:
        return cls(401, message, code="invalid_api_key")

    @classmethod
    def rate_limited(cls, retry_after_s: float | None = None) -> ErrorReply:
        headers = {"retry-after": str(retry_after_s)} if retry_after_s is not None else {}
        return cls(429, "Rate limit reached for requests.", code="rate_limit_exceeded", headers=headers)

    @classmethod
    def quota_exceeded(cls) -> ErrorReply:
        return cls(429, "You exceeded your current quota.", type="insufficient_quota", code="insufficient_quota")

    @classmethod
    def server_error(cls, status: int = 500) -> ErrorReply:
        return cls(status, "The server had an error while processing your request.", type="server_error")

    @classmethod
    def model_not_found(cls, model: str) -> ErrorReply:
        return cls(404, f"The model `{model}` does not exist.", code="model_not_found", param="model")

    @classmethod
    def unrecognized_argument(cls, name: str) -> ErrorReply:
        """OpenAI's answer to a top-level field it does not know."""
        return cls(400, f"Unrecognized request argument supplied: {name}")

    @classmethod
    def llama_cpp_null_content(cls, index: int, message: dict[str, Any]) -> ErrorReply:
        """llama-cpp-python's server (0.3.36) on an assistant message whose content is null: a 500 whose message
        lists how the message failed each kind of message its request model accepts (seen with the real server;
        the file and line it also names are left out)."""
        where = f"('body', 'messages', {index}"
        lines = [
            f"{{'type': 'literal_error', 'loc': {where}, 'ChatCompletionRequestSystemMessage', 'role'), "
            "'msg': \"Input should be 'system'\", 'input': 'assistant', 'ctx': {'expected': \"'system'\"}}",
            f"{{'type': 'literal_error', 'loc': {where}, 'ChatCompletionRequestUserMessage', 'role'), "
            "'msg': \"Input should be 'user'\", 'input': 'assistant', 'ctx': {'expected': \"'user'\"}}",
            f"{{'type': 'string_type', 'loc': {where}, 'ChatCompletionRequestAssistantMessage', 'content'), "
            "'msg': 'Input should be a valid string', 'input': None}",
            f"{{'type': 'literal_error', 'loc': {where}, 'ChatCompletionRequestToolMessage', 'role'), "
            "'msg': \"Input should be 'tool'\", 'input': 'assistant', 'ctx': {'expected': \"'tool'\"}}",
            f"{{'type': 'missing', 'loc': {where}, 'ChatCompletionRequestToolMessage', 'tool_call_id'), "
            f"'msg': 'Field required', 'input': {message!r}}}",
            f"{{'type': 'literal_error', 'loc': {where}, 'ChatCompletionRequestFunctionMessage', 'role'), "
            "'msg': \"Input should be 'function'\", 'input': 'assistant', 'ctx': {'expected': \"'function'\"}}",
            f"{{'type': 'missing', 'loc': {where}, 'ChatCompletionRequestFunctionMessage', 'name'), "
            f"'msg': 'Field required', 'input': {message!r}}}",
        ]
        text = "7 validation errors:\n" + "".join(f"  {line}\n" for line in lines) + "\n    POST /v1/chat/completions"
        return cls(500, text, type="internal_server_error")

    def body(self) -> dict[str, Any]:
        kind = self.type or _ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "api_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Forward:
    """Relay the request to the stand-in's ``upstream`` server and send its answer back as it comes."""


@dataclass
class ReceivedRequest:
    """One request as the stand-in received it; the properties read the chat completion's fields."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None

    def _get(self, key: str) -> Any:
        return (self.body or {}).get(key)

    @property
    def model(self) -> str | None:
        return self._get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._get("messages") or []

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self._get("tools")

    @property
    def tool_choice(self) -> Any:
        return self._get("tool_choice")

    @property
    def temperature(self) -> float | None:
        return self._get("temperature")

    @property
    def max_tokens(self) -> int | None:
        """``max_tokens``, or ``max_completion_tokens`` (what OpenAI's reasoning models take)."""
        value = self._get("max_tokens")
        return value if value is not None else self._get("max_completion_tokens")

    @property
    def stream(self) -> bool:
        return bool(self._get("stream"))

    @property
    def stream_options(self) -> dict[str, Any] | None:
        return self._get("stream_options")

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


Answer = Reply | ErrorReply | Forward
Responder = Callable[[ReceivedRequest], Answer]
Scripted = Answer | Responder

_Send = Callable[[dict[str, Any]], Awaitable[None]]
_Receive = Callable[[], Awaitable[dict[str, Any]]]


class ScriptedAnswers:
    """A stand-in's ``default``: the model's answers by the end user's last message, each a queue (a tool loop asks
    more than once); any other message (a run another test left queued, which a shared server's worker may take) is
    echoed. ``asked`` keeps every last message in the order asked."""

    def __init__(self) -> None:
        self.by_text: dict[str, deque[Reply | ErrorReply]] = {}
        self.lock = threading.Lock()
        self.asked: list[str] = []

    def add(self, text: str, *replies: Reply | ErrorReply) -> None:
        with self.lock:
            self.by_text.setdefault(text, deque()).extend(replies)

    def __call__(self, request: ReceivedRequest) -> Reply | ErrorReply:
        said = next((m.get("content") for m in reversed(request.messages) if m.get("role") == "user"), None) or ""
        with self.lock:
            self.asked.append(said)
            queue = self.by_text.get(said)
            if queue:
                return queue.popleft()
        return Reply(text=f"echo: {said}")


class OpenAIStandIn:
    """The server. Start it with ``with`` (or ``start()``/``close()``); ``base_url`` ends in ``/v1``.

    ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get OpenAI's 401.
    ``models``: what ``GET /v1/models`` lists.
    ``strict``: refuse what real servers refuse (see the module docstring); not with an ``upstream``.
    ``upstream``: the base URL (ending in ``/v1``) that :class:`Forward` answers relay to.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("gpt-4o-mini",),
        strict: bool = True,
        upstream: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.models = list(models)
        self.strict = strict
        self.upstream = upstream.rstrip("/") if upstream else None
        self.default: Scripted | None = None
        self._script: deque[Scripted] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._closed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # ----------------------------------------------------------------------------------------- scripting

    def script(self, *answers: Scripted) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._script.extend(answers)

    def reset(self) -> None:
        """Forget the script, the default, the requests received and the call count (which numbers the ids
        of chat completions and tool calls): for a server shared by several tests."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._calls = 0
            self.default = None

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far (chat completions and model listings), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def completion_requests(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests have arrived; raise ``TimeoutError`` after ``timeout`` seconds."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._requests)} of {count} requests arrived in {timeout} s")
            return list(self._requests)

    # ----------------------------------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> OpenAIStandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            log_level="error",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI stand-in did not start")
            time.sleep(0.005)
        return self

    def close(self) -> None:
        self._closing.set()
        if self._loop is not None and self._closed is not None:
            try:
                self._loop.call_soon_threadsafe(self._closed.set)
            except RuntimeError:  # the loop has already stopped
                pass
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- HTTP

    async def _app(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = ReceivedRequest(scope["method"], scope["path"], headers, body if isinstance(body, dict) else None)
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._send_error(send, ErrorReply.unauthorized())
            return
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            models = [_model_entry(m) for m in self.models]
            await _send_json(send, 200, {"object": "list", "data": models})
            return
        if request.method != "POST" or request.path.rstrip("/") != "/v1/chat/completions":
            await self._send_error(send, ErrorReply(404, f"Unknown request URL: {request.method} {request.path}."))
            return
        if request.body is None or not isinstance(request.body.get("messages"), list):
            await self._send_error(send, ErrorReply(400, "'messages' is a required property", param="messages"))
            return
        refusal = _refusal(request.body) if self.strict and self.upstream is None else None
        if refusal is not None:
            await self._send_error(send, refusal)
            return

        answer = self._next_answer(request)
        if isinstance(answer, Forward):
            await self._forward(send, request, raw)
            return
        if isinstance(answer, ErrorReply):
            await self._sleep(answer.delay_s)
            await self._send_error(send, answer)
            return
        with self._lock:
            self._calls += 1
            call_number = self._calls
        await self._sleep(answer.delay_s)
        if request.stream:
            await self._stream(send, request, answer, call_number)
        else:
            await _send_json(send, 200, _completion(request, answer, call_number), answer.headers)

    def _next_answer(self, request: ReceivedRequest) -> Answer:
        with self._lock:
            scripted = self._script.popleft() if self._script else self.default
        if scripted is None:
            return ErrorReply(400, "The stand-in has no reply scripted for this request.", code="no_scripted_reply")
        return scripted(request) if callable(scripted) else scripted

    async def _forward(self, send: _Send, request: ReceivedRequest, raw: bytes) -> None:
        """The upstream server's answer to this request, status, content type and body as they come."""
        if self.upstream is None:
            await self._send_error(
                send, ErrorReply(500, "Forward() needs OpenAIStandIn(upstream=...).", code="no_upstream")
            )
            return
        path = request.path.removeprefix("/v1")
        headers = {"content-type": "application/json"}
        if request.authorization:
            headers["authorization"] = request.authorization
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(120, connect=5)) as client,
                client.stream(request.method, self.upstream + path, content=raw, headers=headers) as response,
            ):
                kept = [(b"content-type", response.headers.get("content-type", "application/json").encode())]
                await send({"type": "http.response.start", "status": response.status_code, "headers": kept})
                async for piece in response.aiter_raw():
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except httpx.HTTPError:
            return  # the connection to the client is dropped, as a dying proxy would
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_error(self, send: _Send, error: ErrorReply) -> None:
        await _send_json(send, error.status, error.body(), error.headers)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake as soon as the server closes, so a hanging reply never holds the shutdown."""
        if seconds <= 0:
            return
        if self._closed is None:  # made on the server's own loop, at its first use
            self._closed = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        if self._closing.is_set():
            return
        try:
            await asyncio.wait_for(self._closed.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _stream(self, send: _Send, request: ReceivedRequest, reply: Reply, call_number: int) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for sent, chunk in enumerate(_chunks(request, reply, call_number)):
            if reply.disconnect_after is not None and sent >= reply.disconnect_after:
                return  # without the closing empty body: the connection is dropped mid-stream
            if sent and reply.chunk_delay_s:
                await self._sleep(reply.chunk_delay_s)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "stand-in"}


async def _send_json(send: _Send, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------------------------- refusals


def _refusal(body: dict[str, Any]) -> ErrorReply | None:
    """What a real server answers to a request it refuses (see the module docstring), or None."""
    for name in body:
        if name not in KNOWN_FIELDS:
            return ErrorReply.unrecognized_argument(name)
    for index, message in enumerate(body["messages"]):
        if isinstance(message, dict) and message.get("role") == "assistant" and "content" in message:
            if message["content"] is None:
                return ErrorReply.llama_cpp_null_content(index, message)
    return None


# --------------------------------------------------------------------------------------------- payloads


def _split(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` pieces of nearly equal length (fewer when it is shorter); none for ``""``."""
    if not text:
        return []
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _calls(reply: Reply, call_number: int) -> list[ToolCallReply]:
    calls = [c if isinstance(c, ToolCallReply) else ToolCallReply(c[0], c[1]) for c in reply.tool_calls]
    return [
        c if c.id else ToolCallReply(c.name, c.arguments, f"call_{call_number}_{i}", c.fragments)
        for i, c in enumerate(calls)
    ]


def _finish_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _usage(request: ReceivedRequest, reply: Reply) -> dict[str, int]:
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        prompt = sum(4 + len(str(m.get("content") or "").split()) for m in request.messages)
        completion = max(1, len(_split(reply.text, reply.chunks)) + sum(c.fragments for c in _calls(reply, 0)))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _envelope(request: ReceivedRequest, reply: Reply, call_number: int, obj: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-standin{call_number}",
        "object": obj,
        "created": int(time.time()),
        "model": reply.model or request.model or "stand-in",
        "system_fingerprint": "fp_standin",
    }


def _completion(request: ReceivedRequest, reply: Reply, call_number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.reasoning:
        message[reply.reasoning_field] = reply.reasoning
    calls = _calls(reply, call_number)
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
        ]
    payload = _envelope(request, reply, call_number, "chat.completion")
    payload["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}]
    payload["usage"] = _usage(request, reply)
    return payload


def _chunks(request: ReceivedRequest, reply: Reply, call_number: int) -> Iterator[bytes]:
    """The SSE lines of a streamed reply, one ``data:`` event per chunk, ``[DONE]`` last."""
    include_usage = bool((request.stream_options or {}).get("include_usage")) and reply.send_usage
    base = _envelope(request, reply, call_number, "chat.completion.chunk")

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if include_usage:
            chunk["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    calls = _calls(reply, call_number)
    yield event({"role": "assistant", "content": "" if reply.text or not calls else None, "refusal": None})
    for piece in _split(reply.reasoning or "", max(1, reply.chunks)):
        yield event({reply.reasoning_field: piece})
    for piece in _split(reply.text, reply.chunks):
        yield event({"content": piece})
    for index, call in enumerate(calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield event({"tool_calls": [head]})
        for fragment in _split(call.arguments, call.fragments):
            yield event({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield event({}, _finish_reason(reply))
    if include_usage:
        yield b"data: " + json.dumps({**base, "choices": [], "usage": _usage(request, reply)}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
