"""The stand-in of tests/fakes refuses what real servers refuse, so that the tests that use it (not only these
compatibility tests) meet it: no real server is needed here. That its refusal of a null content is the real
llama.cpp server's, word for word, is checked against that server in test_llama_cpp_server.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.openai_server import OpenAIStandIn, Reply

CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


@pytest.fixture
def client() -> Iterator[tuple[OpenAIStandIn, openai.OpenAI]]:
    with OpenAIStandIn() as server:
        server.default = Reply(text="Fine.")
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
            yield server, sdk


def _history(content: Any) -> list[Any]:
    return [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": content, "tool_calls": [CALL]},
        {"role": "tool", "content": "{}", "tool_call_id": "call_1"},
    ]


def test_a_field_openai_does_not_know_is_refused_as_openai_refuses_it(
    client: tuple[OpenAIStandIn, openai.OpenAI],
) -> None:
    _, sdk = client
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], extra_body={"top_k": 5}
        )
    assert refused.value.body == {
        "message": "Unrecognized request argument supplied: top_k",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    # Every field OpenAI documents is taken, stream_options included.
    answer = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=5,
        parallel_tool_calls=False,
        seed=1,
    )
    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == "Fine."


def test_a_tool_call_message_with_null_content_is_refused_as_llama_cpp_refuses_it(
    client: tuple[OpenAIStandIn, openai.OpenAI],
) -> None:
    server, sdk = client
    with pytest.raises(openai.InternalServerError) as refused:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=_history(None))
    assert refused.value.status_code == 500
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "internal_server_error"
    assert body["message"].startswith("7 validation errors:")
    assert "('body', 'messages', 1, 'ChatCompletionRequestAssistantMessage', 'content')" in body["message"]
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=_history(""))
    assert answer.choices[0].message.content == "Fine."
    assert server.pending == 0


def test_a_lenient_stand_in_takes_what_openai_itself_takes() -> None:
    with OpenAIStandIn(strict=False) as server:
        server.default = Reply(text="Fine.")
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
            answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=_history(None))
    assert answer.choices[0].message.content == "Fine."
