"""Token counting of the providers, offline: the bundled encodings, OpenAI's documented rules, the margin."""

from __future__ import annotations

import pytest

from threadline.engines.providers.base import ChatMessage, ToolSpec
from threadline.engines.providers.openai import OpenAIProvider
from threadline.engines.providers.tokens import (
    UNKNOWN_MODEL_MARGIN,
    MarginBook,
    count_chat_tokens,
    get_encoding,
    tokenizer_for,
)

# The samples of OpenAI's cookbook ("How to count tokens with tiktoken"), whose counts it checked against
# the API's usage.prompt_tokens: 129 / 124 for the messages, 105 / 101 with the tool.
JARGON = (
    ChatMessage(
        "system",
        "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    ),
    ChatMessage("system", "New synergies will help drive top-line growth.", name="example_user"),
    ChatMessage("system", "Things working well together will increase revenue.", name="example_assistant"),
    ChatMessage(
        "system",
        "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
        name="example_user",
    ),
    ChatMessage("system", "Let's talk later when we're less busy about how to do better.", name="example_assistant"),
    ChatMessage("user", "This late pivot means we don't have time to boil the ocean for the client deliverable."),
)
WEATHER_CHAT = (
    ChatMessage("system", "You are a helpful assistant that can answer to questions about the weather."),
    ChatMessage("user", "What's the weather like in San Francisco?"),
)
WEATHER_TOOL = ToolSpec(
    "get_current_weather",
    "Get the current weather in a given location",
    {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {
                "type": "string",
                "description": "The unit of temperature to return",
                "enum": ["celsius", "fahrenheit"],
            },
        },
        "required": ["location"],
    },
)


@pytest.fixture(scope="module")
def provider() -> OpenAIProvider:
    return OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key=None)


def test_bundled_encodings_give_tiktokens_known_ids() -> None:
    assert get_encoding("cl100k_base").encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert get_encoding("o200k_base").encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0]


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)]
)
def test_messages_count_as_the_openai_api_counted_them(provider: OpenAIProvider, model: str, expected: int) -> None:
    assert provider.count_tokens(JARGON, model=model) == expected


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_tool_definitions_count_as_the_openai_api_counted_them(
    provider: OpenAIProvider, model: str, expected: int
) -> None:
    assert provider.count_tokens(WEATHER_CHAT, (WEATHER_TOOL,), model=model) == expected


@pytest.mark.parametrize("model", ["gpt-4o", "llama3.1:8b", None])
def test_more_text_is_more_tokens(provider: OpenAIProvider, model: str | None) -> None:
    short = (ChatMessage("user", "Where is my parcel?"),)
    long = (ChatMessage("user", "Where is my parcel? I ordered it three weeks ago and it has still not come."),)
    assert 0 < provider.count_tokens(short, model=model) < provider.count_tokens(long, model=model)
    assert provider.count_tokens(short, (WEATHER_TOOL,), model=model) > provider.count_tokens(short, model=model)


def test_tool_calls_in_the_history_count(provider: OpenAIProvider) -> None:
    from threadline.engines.providers.base import ToolCall

    plain = (ChatMessage("assistant", "Let me see."),)
    calling = (ChatMessage("assistant", "Let me see.", tool_calls=(ToolCall("call_1", "lookup", '{"id": 12345}'),)),)
    assert provider.count_tokens(calling, model="gpt-4o") > provider.count_tokens(plain, model="gpt-4o")


def test_nested_parameters_are_counted_as_json_not_skipped(provider: OpenAIProvider) -> None:
    flat = ToolSpec("f", "F.", {"type": "object", "properties": {"a": {"type": "string"}}})
    nested = ToolSpec(
        "f",
        "F.",
        {
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}
            },
        },
    )
    assert provider.count_tokens(WEATHER_CHAT, (nested,), model="gpt-4o") > provider.count_tokens(
        WEATHER_CHAT, (flat,), model="gpt-4o"
    )


def test_models_of_unknown_tokenizer_are_counted_with_a_margin(provider: OpenAIProvider) -> None:
    tokenizer = tokenizer_for("qwen2.5:7b-instruct")
    assert (tokenizer.encoding_name, tokenizer.exact) == ("cl100k_base", False)
    raw = count_chat_tokens(WEATHER_CHAT, (WEATHER_TOOL,), tokenizer)
    counted = provider.count_tokens(WEATHER_CHAT, (WEATHER_TOOL,), model="qwen2.5:7b-instruct")
    assert counted == pytest.approx(raw * UNKNOWN_MODEL_MARGIN, abs=1)


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o-2024-08-06", "o200k_base", True),
        ("ft:gpt-4o-mini:acme::x1", "o200k_base", True),
        ("gpt-4.1", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("gpt-4-turbo", "cl100k_base", True),
        ("gpt-3.5-turbo", "cl100k_base", True),
        ("gpt-oss-20b", "o200k_base", False),
        ("mistral", "cl100k_base", False),
    ],
)
def test_each_model_gets_its_tokenizer(model: str, encoding: str, exact: bool) -> None:
    tokenizer = tokenizer_for(model)
    assert (tokenizer.encoding_name, tokenizer.exact) == (encoding, exact)


def test_the_margin_follows_what_the_server_reported() -> None:
    book = MarginBook()
    assert book.apply("mistral", 100) == 125  # the default margin until the server has said something
    book.observe("mistral", counted=100, reported=140)
    assert book.apply("mistral", 100) == 147  # the largest ratio seen, plus 5%
    book.observe("mistral", counted=100, reported=110)
    assert book.apply("mistral", 100) == 147  # a smaller ratio does not lower it
    book.observe("qwen", counted=100, reported=80)
    assert book.apply("qwen", 100) == 100  # never below the raw count
    assert book.apply("other", 100) == 125
