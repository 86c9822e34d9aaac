"""The ``openai`` provider through the real ``openai`` SDK, against the OpenAI stand-in on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.fakes.openai_server import ErrorReply, OpenAIStandIn, Reply, ToolCallReply
from threadline.engines.providers.base import (
    ChatMessage,
    Completion,
    CompletionRequest,
    ProviderError,
    StreamItem,
    TextDelta,
    ToolCall,
    ToolSpec,
    UnsupportedFeature,
    Usage,
)
from threadline.engines.providers.openai import OpenAIProvider, known_context_window
from threadline.engines.providers.tokens import get_encoding

KEY = "sk-test-0123456789abcdef0123456789abcdef"

WEATHER = ToolSpec(
    "get_weather",
    "Get the weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string", "description": "The city."}}, "required": ["city"]},
)
LOOKUP = ToolSpec("lookup_order", "Find an order.", {"type": "object", "properties": {"order_id": {"type": "integer"}}})


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
async def provider(server: OpenAIStandIn) -> AsyncIterator[OpenAIProvider]:
    server.reset()
    instance = OpenAIProvider(base_url=server.base_url, api_key=KEY, timeout_s=5, default_context_window=4096)
    yield instance
    await instance.aclose()


def request(*messages: ChatMessage, model: str = "gpt-4o-mini", **kwargs: Any) -> CompletionRequest:
    return CompletionRequest(
        model=model, messages=messages or (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")), **kwargs
    )


async def collect(provider: OpenAIProvider, req: CompletionRequest) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    items: list[StreamItem] = []
    async for item in provider.stream(req):
        items.append(item)
        if isinstance(item, TextDelta):
            deltas.append(item.text)
    assert isinstance(items[-1], Completion), "the stream ends with one Completion"
    assert all(isinstance(i, TextDelta) for i in items[:-1])
    return deltas, items[-1]


async def failure(provider: OpenAIProvider, req: CompletionRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await collect(provider, req)
    return caught.value


# ------------------------------------------------------------------------------------------------ answers


async def test_text_streams_as_deltas_then_one_completion_with_the_servers_usage(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.script(Reply(text="Hello! How can I help?", chunks=4, usage=(17, 6)))

    deltas, completion = await collect(provider, request(temperature=0.3, max_tokens=64))

    assert len(deltas) == 4
    assert "".join(deltas) == completion.text == "Hello! How can I help?"
    assert completion.usage == Usage(17, 6)
    assert completion.finish_reason == "stop"
    assert completion.tool_calls == ()
    sent = server.completion_requests[0]
    assert sent.model == "gpt-4o-mini"
    assert sent.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent.stream is True
    assert sent.stream_options == {"include_usage": True}
    assert sent.temperature == 0.3
    assert sent.body is not None and sent.body["max_tokens"] == 64
    assert sent.authorization == f"Bearer {KEY}"
    assert sent.tools is None and sent.tool_choice is None  # no tools: neither is sent


async def test_two_tool_calls_are_assembled_from_their_fragments(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.script(
        Reply(
            text="Let me look.",
            tool_calls=[
                ToolCallReply("get_weather", '{"city": "Lyon"}', id="call_weather", fragments=5),
                ToolCallReply("lookup_order", '{"order_id": 4412}', id="call_order", fragments=3),
            ],
        )
    )

    deltas, completion = await collect(provider, request(tools=(WEATHER, LOOKUP)))

    assert "".join(deltas) == "Let me look."
    assert completion.tool_calls == (
        ToolCall("call_weather", "get_weather", '{"city": "Lyon"}'),
        ToolCall("call_order", "lookup_order", '{"order_id": 4412}'),
    )
    assert completion.finish_reason == "tool_calls"
    sent = server.completion_requests[0]
    assert sent.tools == [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in (WEATHER, LOOKUP)
    ]


async def test_a_server_that_says_stop_after_tool_calls_still_reports_tool_calls(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.script(Reply(tool_calls=[ToolCallReply("get_weather", '{"city": "Oslo"}')], finish_reason="stop"))

    _, completion = await collect(provider, request(tools=(WEATHER,)))

    assert [c.name for c in completion.tool_calls] == ["get_weather"]
    assert completion.finish_reason == "tool_calls"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_text_is_kept_apart_from_the_answer(
    provider: OpenAIProvider, server: OpenAIStandIn, field: str
) -> None:
    server.script(Reply(text="42.", reasoning="Six times seven.", reasoning_field=field, chunks=2))

    deltas, completion = await collect(provider, request())

    assert "".join(deltas) == completion.text == "42."
    assert completion.reasoning == "Six times seven."


async def test_history_with_tool_calls_and_results_is_sent_in_openai_shape(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.script(Reply(text="It is sunny in Lyon."))
    history = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Lyon?", name="ana"),
        ChatMessage("assistant", None, tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Lyon"}'),)),
        ChatMessage("tool", '{"sky": "sunny"}', tool_call_id="call_1"),
    )

    await collect(provider, request(*history, tools=(WEATHER,)))

    assert server.completion_requests[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Lyon?", "name": "ana"},
        {
            "role": "assistant",
            "content": "",  # never null: llama.cpp's server refuses it
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"sky": "sunny"}', "tool_call_id": "call_1"},
    ]


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
async def test_tool_choice_is_mapped_to_the_apis_form(
    provider: OpenAIProvider, server: OpenAIStandIn, choice: str, sent: Any
) -> None:
    server.script(Reply(text="ok"))

    await collect(provider, request(tools=(WEATHER,), tool_choice=choice))

    assert server.completion_requests[0].tool_choice == sent


@pytest.mark.parametrize(("model", "field"), [("gpt-4o-mini", "max_tokens"), ("o3-mini", "max_completion_tokens")])
async def test_reasoning_models_get_max_completion_tokens(
    provider: OpenAIProvider, server: OpenAIStandIn, model: str, field: str
) -> None:
    server.script(Reply(text="ok"))

    await collect(provider, request(model=model, max_tokens=99))

    body = server.completion_requests[0].body or {}
    assert body[field] == 99
    assert {"max_tokens", "max_completion_tokens"} - {field} & body.keys() == set()


async def test_without_usage_from_the_server_the_tokens_are_counted(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.script(Reply(text="Counted, not reported.", send_usage=False))
    req = request(tools=(WEATHER,))

    _, completion = await collect(provider, req)

    assert completion.usage.input_tokens == provider.count_tokens(req.messages, req.tools, model=req.model)
    assert completion.usage.output_tokens == len(get_encoding("o200k_base").encode("Counted, not reported."))


async def test_a_server_that_refuses_stream_options_is_asked_without_them_from_then_on(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.script(
        ErrorReply(400, "Unrecognized request argument supplied: stream_options"),
        Reply(text="first", send_usage=False),
        Reply(text="second", send_usage=False),
    )

    _, first = await collect(provider, request())
    _, second = await collect(provider, request())

    assert (first.text, second.text) == ("first", "second")
    assert [r.stream_options for r in server.completion_requests] == [{"include_usage": True}, None, None]


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("error", "retryable", "code"),
    [
        (ErrorReply.rate_limited(), True, "provider_rate_limited"),
        (ErrorReply.quota_exceeded(), False, "provider_quota_exceeded"),
        (ErrorReply.server_error(500), True, "provider_server_error"),
        (ErrorReply.server_error(503), True, "provider_server_error"),
        (ErrorReply(400, "Invalid value for 'temperature'.", param="temperature"), False, "provider_bad_request"),
        (ErrorReply(400, "Too long.", code="context_length_exceeded"), False, "context_length_exceeded"),
        (ErrorReply.unauthorized(), False, "provider_auth_failed"),
        (ErrorReply(403, "Not allowed in your region."), False, "provider_forbidden"),
        (ErrorReply.model_not_found("gpt-9"), False, "provider_model_not_found"),
    ],
    ids=lambda v: str(v.status) + (f"-{v.code}" if v.code else "") if isinstance(v, ErrorReply) else None,
)
async def test_http_errors_say_whether_to_try_again(
    provider: OpenAIProvider, server: OpenAIStandIn, error: ErrorReply, retryable: bool, code: str
) -> None:
    server.script(error)

    exc = await failure(provider, request())

    assert (exc.retryable, exc.code) == (retryable, code)
    assert len(server.completion_requests) == 1, "the SDK does not retry by itself"


async def test_a_server_that_does_not_answer_in_time_is_a_retryable_timeout(server: OpenAIStandIn) -> None:
    server.reset()
    server.script(Reply(text="too late", delay_s=3))
    impatient = OpenAIProvider(base_url=server.base_url, api_key=KEY, timeout_s=0.3)
    try:
        exc = await failure(impatient, request())
    finally:
        await impatient.aclose()

    assert (exc.retryable, exc.code) == (True, "provider_timeout")


async def test_no_server_listening_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens there
    nobody = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, timeout_s=2)
    try:
        exc = await failure(nobody, request())
    finally:
        await nobody.aclose()

    assert (exc.retryable, exc.code) == (True, "provider_unavailable")


async def test_a_connection_dropped_mid_answer_is_retryable(provider: OpenAIProvider, server: OpenAIStandIn) -> None:
    server.script(Reply(text="This answer never ends", chunks=6, disconnect_after=3))
    deltas: list[str] = []

    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(request()):
            if isinstance(item, TextDelta):
                deltas.append(item.text)

    assert caught.value.retryable
    assert deltas, "what came before the break was streamed"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
async def test_the_api_key_never_appears_in_an_error(
    provider: OpenAIProvider, server: OpenAIStandIn, status: int
) -> None:
    server.script(ErrorReply(status, f"Incorrect API key provided: {KEY}. You passed {KEY[:12]}..."))

    exc = await failure(provider, request())

    assert KEY not in str(exc)
    assert KEY not in repr(exc)
    assert KEY not in repr(provider)


async def test_a_wrong_key_fails_without_quoting_it(server: OpenAIStandIn) -> None:
    server.reset()
    wrong = "sk-wrong-key-9876543210"
    bad = OpenAIProvider(base_url=server.base_url, api_key=wrong, timeout_s=5)
    try:
        exc = await failure(bad, request())
    finally:
        await bad.aclose()

    assert exc.code == "provider_auth_failed" and not exc.retryable
    assert wrong not in str(exc) and "sk-" not in str(exc)


# ------------------------------------------------------------------------------------------------ sizes


def test_a_version_without_a_model_is_refused(provider: OpenAIProvider) -> None:
    with pytest.raises(UnsupportedFeature, match="needs a model"):
        provider.check(model=None, tools=[], settings={})
    provider.check(model="llama3.1:8b", tools=[], settings={})
    provider.check(model=None, tools=[], settings={"model": "gpt-4o"})


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o", 128_000),
        ("gpt-4o-mini-2024-07-18", 128_000),
        ("ft:gpt-4o-mini:acme::abc123", 128_000),
        ("gpt-4.1-mini", 1_047_576),
        ("gpt-4", 8_192),
        ("gpt-4-turbo", 128_000),
        ("o1-mini", 128_000),
        ("o3", 200_000),
        ("gpt-5-mini", 272_000),
    ],
)
def test_known_models_have_their_context_window(provider: OpenAIProvider, model: str, window: int) -> None:
    assert provider.context_window(model) == window


def test_unknown_models_get_the_configured_default_window(provider: OpenAIProvider) -> None:
    assert known_context_window("llama3.1:8b") is None
    assert provider.context_window("llama3.1:8b") == 4096


# ------------------------------------------------------------------------------------------------ the stand-in


def test_the_stand_in_answers_the_sdk_without_streaming_and_lists_models(server: OpenAIStandIn) -> None:
    import openai

    server.reset()
    server.script(Reply(text="Plain.", usage=(9, 2), tool_calls=[ToolCallReply("get_weather", '{"city": "Nice"}')]))
    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    try:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        models = [m.id for m in client.models.list()]
    finally:
        client.close()

    assert answer.choices[0].message.content == "Plain."
    calls = answer.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1_0", "get_weather", '{"city": "Nice"}')
    ]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (9, 2)
    assert models == ["gpt-4o-mini"]


async def test_the_stand_in_answers_beyond_its_script_with_its_default(
    provider: OpenAIProvider, server: OpenAIStandIn
) -> None:
    server.default = lambda received: Reply(text=str(received.messages[-1]["content"]).upper())

    _, first = await collect(provider, request(ChatMessage("user", "echo me")))
    _, second = await collect(provider, request(ChatMessage("user", "again")))

    assert (first.text, second.text) == ("ECHO ME", "AGAIN")
    assert len(server.wait_for_requests(2, timeout=1)) == 2
