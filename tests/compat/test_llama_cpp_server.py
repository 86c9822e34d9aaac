"""threadline's ``openai`` provider against a real OpenAI-compatible server that nobody here wrote:
llama-cpp-python's (see conftest.py), through the whole app: a message POSTed to a thread, a worker running the
agent, the replies read back.

Where a test must see what went over the wire, or make the server fail on cue, the stand-in of tests/fakes sits in
front of the real server as a relay (``Forward``): every answer still comes from llama.cpp.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.compat.conftest import CONTEXT, LlamaServer
from tests.events.sse import frames
from tests.factories import create_agent, create_end_user, create_thread
from tests.fakes.openai_server import ErrorReply, Forward, OpenAIStandIn, Reply
from tests.fakes.shop import ORDER_TOOL, Shop
from tests.runs.conftest import running_worker
from tests.runs.conversation import messages_of, say

pytestmark = pytest.mark.slow


@pytest.fixture
def shop() -> Iterator[Shop]:
    s = Shop()
    yield s
    s.close()


@pytest.fixture
def relay(llama_server: LlamaServer) -> Iterator[OpenAIStandIn]:
    """The stand-in in front of the real server: forwards everything unless a test scripts otherwise."""
    with OpenAIStandIn(upstream=llama_server.base_url, models=[llama_server.model]) as server:
        server.default = Forward()
        yield server


def _tuned(settings: Any, base_url: str) -> Any:
    return settings.replace(
        openai_base_url=base_url,
        openai_api_key=SecretStr("no-key"),  # llama.cpp's server checks none unless started with one
        tools_allow_private_urls=True,  # the shop runs on 127.0.0.1 here
    )


@pytest.fixture
async def direct_worker(sessionmaker: Any, settings: Any, llama_server: LlamaServer) -> AsyncIterator[None]:
    """A worker whose ``openai`` provider talks to the llama.cpp server itself."""
    async with running_worker(sessionmaker, _tuned(settings, llama_server.base_url), concurrency=2):
        yield


@pytest.fixture
async def relayed_worker(sessionmaker: Any, settings: Any, relay: OpenAIStandIn) -> AsyncIterator[None]:
    """A worker whose ``openai`` provider talks to the llama.cpp server through the relay."""
    async with running_worker(sessionmaker, _tuned(settings, relay.base_url), concurrency=2):
        yield


async def _thread(api: httpx.AsyncClient, llama_server: LlamaServer, **version: Any) -> dict[str, Any]:
    spec = {
        "mode": "PROMPT",
        "provider": "openai",
        "model": llama_server.model,
        "system_prompt": "You work for Acme Bikes in Lyon.",
        "temperature": 0,
        "max_tokens": 24,
        **version,
    }
    spec["settings"] = {"context_window": CONTEXT, **spec.get("settings", {})}
    agent = await create_agent(api, version=spec)
    user = await create_end_user(api, display_name="Ada")
    return await create_thread(api, agent_id=agent["id"], end_user_id=user["id"])


def _forced(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


# ---------------------------------------------------------------------------------------------- answers


async def test_a_prompt_agent_answers_through_the_llama_cpp_server(
    api: httpx.AsyncClient, llama_server: LlamaServer, direct_worker: None
) -> None:
    thread = await _thread(api, llama_server)
    body = await say(api, thread, wait=60, text="Hello! Do you repair flat tyres?")
    run = body["run"]
    assert run["status"] == "completed", run
    [reply] = body["replies"]
    assert reply["role"] == "assistant" and reply["content"].strip()
    # llama-cpp-python sends no usage in a stream (it ignores stream_options): threadline counts, and says so.
    usage = run["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["estimated"] is True


async def test_the_answer_streams_token_by_token_before_the_reply_is_stored(
    api: httpx.AsyncClient, llama_server: LlamaServer, direct_worker: None
) -> None:
    thread = await _thread(api, llama_server, max_tokens=32)
    events: list[tuple[str, Any]] = []
    async with api.stream(
        "POST",
        f"/v1/threads/{thread['id']}/messages",
        params={"stream": "true"},
        json={"content": "Hello! What can you tell me about your bikes?"},
    ) as r:
        assert r.status_code == 201
        async for f in frames(r):
            if f.event:
                events.append((f.event, f.json))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "run.completed", kinds
    stored = next(
        i for i, (kind, e) in enumerate(events) if kind == "message.created" and e["data"]["role"] == "assistant"
    )
    deltas = [e["data"]["delta"] for kind, e in events[:stored] if kind == "message.delta"]
    assert deltas, kinds  # the text came in pieces before the reply was stored
    assert not [kind for kind in kinds[stored:] if kind == "message.delta"]
    reply = events[stored][1]["data"]
    assert "".join(deltas) == reply["content"] and reply["content"].strip()


# ---------------------------------------------------------------------------------------------- tools


async def test_a_forced_tool_call_goes_round_the_whole_loop(
    api: httpx.AsyncClient, llama_server: LlamaServer, relay: OpenAIStandIn, shop: Shop, relayed_worker: None
) -> None:
    thread = await _thread(api, llama_server, tools=[shop.tool()], settings={"tool_choice": ORDER_TOOL})
    body = await say(api, thread, wait=60, text="What is the status of my order A1?")
    run = body["run"]
    assert run["status"] == "completed", run
    [reply] = body["replies"]
    [call] = reply["tool_calls"]
    assert call["name"] == ORDER_TOOL and isinstance(call["arguments"].get("order"), str)
    assert call["result"] == {"order": call["arguments"]["order"], "status": "shipped", "eta": "Friday"}
    assert [c["body"] for c in shop.calls] == [call["arguments"]]
    assert reply["content"].strip()
    assert [len(i["tool_calls"]) for i in reply["iterations"]] == [1, 0]

    # What llama.cpp was sent: the forced call, then the call and its result, in the shapes it accepts.
    first, second = relay.completion_requests
    assert first.stream and first.tool_choice == _forced(ORDER_TOOL)
    assert [t["function"]["name"] for t in first.tools or []] == [ORDER_TOOL]
    asked, answered = second.messages[-2:]
    assert asked["role"] == "assistant" and asked["content"] == ""  # never null: llama.cpp refuses that
    assert [c["id"] for c in asked["tool_calls"]] == [call["id"]]
    assert answered["role"] == "tool" and answered["tool_call_id"] == call["id"]
    assert json.loads(answered["content"]) == call["result"]
    assert second.tool_choice != _forced(ORDER_TOOL)  # forced once, not on every call


async def test_an_http_tool_runs_once_per_call_id_across_a_retried_run(
    api: httpx.AsyncClient, llama_server: LlamaServer, relay: OpenAIStandIn, shop: Shop, relayed_worker: None
) -> None:
    """The second model call fails once (a 500, which is retried): the retried run resumes from the recorded tool
    result instead of calling the tool again, and the tool saw an Idempotency-Key naming the run and the call."""
    thread = await _thread(api, llama_server, tools=[shop.tool()], settings={"tool_choice": ORDER_TOOL})
    relay.script(Forward(), ErrorReply.server_error(500))
    body = await say(api, thread, wait=60, text="What is the status of my order A1?")
    run = body["run"]
    assert run["status"] == "completed" and run["attempts"] == 2, run
    [reply] = body["replies"]
    [call] = reply["tool_calls"]
    assert shop.calls == [{"body": call["arguments"], "idempotency_key": f"{run['id']}:{call['id']}"}]
    # The model was asked three times: the forced call, the failed one, and the resumed one with the result.
    first, failed, resumed = relay.completion_requests
    assert first.tool_choice == _forced(ORDER_TOOL) and failed.messages == resumed.messages
    assert [m["role"] for m in resumed.messages[-2:]] == ["assistant", "tool"]
    assert resumed.messages[-1]["tool_call_id"] == call["id"]
    assert reply["content"].strip()


# ---------------------------------------------------------------------------------------------- the stand-in


def test_the_stand_in_refuses_a_null_content_exactly_as_the_llama_cpp_server_does(llama_server: LlamaServer) -> None:
    """The stand-in the other tests use answers a tool-call message with ``content: null`` as llama.cpp's server
    does, so that the regression of issue 13 shows there too; and what the real server accepts, it accepts."""
    call = {"id": "call_1", "type": "function", "function": {"name": ORDER_TOOL, "arguments": '{"order": "A1"}'}}
    asked: list[dict[str, Any]] = [
        {"role": "user", "content": "Where is A1?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "call_1"},
    ]
    request = {"model": llama_server.model, "messages": asked, "max_tokens": 4, "temperature": 0}
    with OpenAIStandIn(models=[llama_server.model]) as stand_in:
        stand_in.default = Reply(text="fine")
        real = httpx.post(f"{llama_server.base_url}/chat/completions", json=request, timeout=60)
        ours = httpx.post(f"{stand_in.base_url}/chat/completions", json=request, timeout=10)
        assert (real.status_code, ours.status_code) == (500, 500)
        # The real message also names the file and line that raised; the rest is the same, word for word.
        real_error = real.json()["error"]
        real_error["message"] = re.sub(r'  File "[^"]*", line \d+, in \w+\n', "", real_error["message"])
        assert ours.json()["error"] == real_error

        asked[1]["content"] = ""  # what threadline sends: both accept it
        for base_url in (llama_server.base_url, stand_in.base_url):
            r = httpx.post(f"{base_url}/chat/completions", json=request, timeout=60)
            assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------- failures


async def test_when_the_server_goes_down_the_run_fails_for_operators_and_says_nothing_to_the_end_user(
    api: httpx.AsyncClient, llama_server: LlamaServer, relay: OpenAIStandIn, relayed_worker: None
) -> None:
    thread = await _thread(api, llama_server)
    before = await say(api, thread, wait=60, text="Hello! Do you repair flat tyres?")
    assert before["run"]["status"] == "completed" and len(before["replies"]) == 1
    relay.close()  # the model server's address stops answering

    body = await say(api, thread, wait=60, text="Are you open on Sunday?")
    run = body["run"]
    assert run["status"] == "failed" and run["error"]["code"] == "provider_unavailable", run
    assert run["error"]["message"]  # what went wrong, for operators, on the run
    assert body["replies"] == []  # and nothing a client would show its end user
    got = (await api.get(f"/v1/runs/{run['id']}")).json()
    assert got["status"] == "failed" and got["error"] == run["error"]
    stored = await messages_of(api, thread)
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [before["replies"][0]["content"]]
    assert [m for m in stored if m["role"] == "system" and m["metadata"].get("run_id") == run["id"]]
