"""A PROMPT agent against a model server that misbehaves the way real ones do (a stand-in on 127.0.0.1,
talked to through the real ``openai`` SDK): tool-call messages the server accepts, tool calls that never
run twice across retried attempts, failures that reach operators and never the end user, empty answers
treated as failures, and usage that says when it was estimated."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.factories import create_agent, create_end_user, create_thread
from tests.fakes.openai_server import ErrorReply, OpenAIStandIn, Reply, ToolCallReply
from tests.fakes.shop import Shop
from tests.runs.conftest import running_worker
from tests.runs.conversation import messages_of, say
from threadline.jobs.worker import Worker
from threadline.metrics import Metrics

FALLBACK = "Sorry, something went wrong; a person will get back to you."


@pytest.fixture
def llm() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-test") as server:
        yield server


@pytest.fixture
def shop() -> Iterator[Shop]:
    s = Shop()
    yield s
    s.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tuned(settings: Any, base_url: str) -> Any:
    return settings.replace(
        openai_base_url=base_url,
        openai_api_key=SecretStr("sk-test"),
        tools_allow_private_urls=True,
        openai_timeout_s=5.0,
    )


@pytest.fixture
async def llm_worker(sessionmaker: Any, settings: Any, llm: OpenAIStandIn, metrics: Metrics) -> AsyncIterator[Worker]:
    async with running_worker(sessionmaker, _tuned(settings, llm.base_url), concurrency=2, metrics=metrics) as w:
        yield w


async def _thread(api: httpx.AsyncClient, **version: Any) -> dict[str, Any]:
    spec = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "max_tokens": 200, **version}
    agent = await create_agent(api, version=spec)
    user = await create_end_user(api, display_name="Ada")
    return await create_thread(api, agent_id=agent["id"], end_user_id=user["id"])


# ---------------------------------------------------------------------------------------------- tool loops


async def test_the_tool_call_message_carries_empty_content_never_null(
    api: httpx.AsyncClient, llm: OpenAIStandIn, shop: Shop, llm_worker: Worker
) -> None:
    thread = await _thread(api, tools=[shop.tool()])
    llm.script(
        Reply(tool_calls=[ToolCallReply("order_status", '{"order": "A1"}')]),  # no text beside the call
        Reply(text="A1 has shipped."),
    )
    body = await say(api, thread, "Where is A1?")
    assert [m["content"] for m in body["replies"]] == ["A1 has shipped."]
    second = llm.completion_requests[1]
    call = next(m for m in second.messages if m.get("tool_calls"))
    assert call["content"] == ""  # llama.cpp's server refuses null here (OpenAI takes both)


async def test_a_retried_run_resumes_from_recorded_tool_results_and_never_calls_a_tool_twice(
    api: httpx.AsyncClient, llm: OpenAIStandIn, shop: Shop, llm_worker: Worker
) -> None:
    thread = await _thread(api, tools=[shop.tool()])
    llm.script(
        Reply(tool_calls=[ToolCallReply("order_status", '{"order": "A1"}', id="call_A")], usage=(100, 10)),
        ErrorReply.server_error(500),  # the second model call fails: the run is retried
        Reply(text="A1 has shipped.", usage=(150, 5)),
    )
    body = await say(api, thread, "Where is A1?")
    run = body["run"]
    assert run["status"] == "completed" and run["attempts"] == 2
    assert shop.calls == [{"body": {"order": "A1"}, "idempotency_key": f"{run['id']}:call_A"}]
    # The retry asked the model once more, with the recorded call and result; not the first question again.
    assert len(llm.completion_requests) == 3
    last = llm.completion_requests[2].messages
    assert [m["role"] for m in last[-2:]] == ["assistant", "tool"]
    assert json.loads(last[-1]["content"]) == {"order": "A1", "status": "shipped", "eta": "Friday"}
    [reply] = body["replies"]
    assert reply["content"] == "A1 has shipped."
    assert [c["id"] for c in reply["tool_calls"]] == ["call_A"]
    first, second = reply["iterations"]
    assert first.get("resumed") is True and "resumed" not in second
    assert run["usage"]["input_tokens"] == 250 and run["usage"]["output_tokens"] == 15


async def test_a_tool_call_that_completed_before_the_worker_died_is_not_run_again(
    api: httpx.AsyncClient, llm: OpenAIStandIn, shop: Shop, sessionmaker: Any, settings: Any
) -> None:
    """Two calls in one step; the first completed and was recorded, then the attempt died: the next attempt
    runs only the second, with its own key."""
    thread = await _thread(api, tools=[shop.tool()])
    llm.script(
        Reply(
            tool_calls=[
                ToolCallReply("order_status", '{"order": "A1"}', id="c1"),
                ToolCallReply("order_status", '{"order": "B2"}', id="c2"),
            ]
        ),
        Reply(text="Both shipped."),
    )
    from threadline.engines import tools as runtime_module

    original = runtime_module.ToolRunner.run
    died = {"done": False}

    async def dying(self: Any, call: Any, *, idempotency_key: str | None = None) -> Any:
        if call.id == "c2" and not died["done"]:
            died["done"] = True
            raise ConnectionResetError("the worker went away")  # after c1 was recorded
        return await original(self, call, idempotency_key=idempotency_key)

    runtime_module.ToolRunner.run = dying  # type: ignore[method-assign]
    try:
        async with running_worker(sessionmaker, _tuned(settings, llm.base_url), concurrency=1):
            body = await say(api, thread, "Where are A1 and B2?")
    finally:
        runtime_module.ToolRunner.run = original  # type: ignore[method-assign]
    run = body["run"]
    assert run["status"] == "completed" and run["attempts"] == 2
    assert [(c["body"]["order"], c["idempotency_key"]) for c in shop.calls] == [
        ("A1", f"{run['id']}:c1"),
        ("B2", f"{run['id']}:c2"),
    ]
    assert len(llm.completion_requests) == 2  # the model was not asked for the calls again
    assert [c["id"] for c in body["replies"][0]["tool_calls"]] == ["c1", "c2"]


# ---------------------------------------------------------------------------------------------- failures


@pytest.fixture
async def dead_worker(sessionmaker: Any, settings: Any, metrics: Metrics) -> AsyncIterator[Worker]:
    """A worker whose model server does not exist (nothing listens on its port)."""
    url = f"http://127.0.0.1:{_free_port()}/v1"
    async with running_worker(sessionmaker, _tuned(settings, url), metrics=metrics) as w:
        yield w


async def test_when_the_model_server_is_down_the_end_user_gets_no_error_text(
    api: httpx.AsyncClient, dead_worker: Worker, metrics: Metrics
) -> None:
    thread = await _thread(api)
    body = await say(api, thread, "Hello?")
    run = body["run"]
    assert run["status"] == "failed" and run["error"]["code"] == "provider_unavailable"
    assert body["replies"] == []  # nothing for a client to show its end user
    stored = await messages_of(api, thread)
    note = next(m for m in stored if m["role"] == "system")  # for operators, in the thread
    assert "provider_unavailable" in note["content"] and note["metadata"]["run_id"] == run["id"]
    assert not [m for m in stored if m["role"] == "assistant"]
    assert (await api.get(f"/v1/threads/{thread['id']}")).json()["active"] is True
    rendered = metrics.render().decode()
    assert 'outcome="failed"' in rendered and "provider_unavailable" in rendered


async def test_a_version_can_send_a_fallback_message_and_hand_the_thread_to_a_human(
    api: httpx.AsyncClient, dead_worker: Worker
) -> None:
    thread = await _thread(api, failure_reply=FALLBACK, failure_handoff=True)
    body = await say(api, thread, "Hello?")
    assert body["run"]["status"] == "failed"
    assert [(m["role"], m["content"]) for m in body["replies"]] == [("assistant", FALLBACK)]
    after = (await api.get(f"/v1/threads/{thread['id']}")).json()
    assert after["active"] is False  # a human takes over
    # The thread is a human's now: the next message starts no run.
    r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "anyone?"})
    assert r.status_code == 201 and r.json().get("run") is None


async def test_the_failure_policy_is_shown_and_checked_on_the_version(api: httpx.AsyncClient) -> None:
    agent = await create_agent(
        api,
        version={
            "mode": "PROMPT",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "failure_reply": FALLBACK,
            "failure_handoff": True,
            "pricing": {"input_per_million_tokens": 0.15, "output_per_million_tokens": 0.6},
        },
    )
    version = agent["current_version"]
    assert version["failure_reply"] == FALLBACK and version["failure_handoff"] is True
    assert version["pricing"] == {"currency": "USD", "input_per_million_tokens": 0.15, "output_per_million_tokens": 0.6}
    for bad in ({"failure_reply": "   "}, {"failure_handoff": "maybe"}, {"pricing": {"input_per_million_tokens": -1}}):
        r = await api.post(
            f"/v1/agents/{agent['id']}/versions",
            json={"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", **bad},
        )
        assert r.status_code == 422, (bad, r.text)


async def test_an_empty_answer_is_a_failed_attempt_not_an_empty_message(
    api: httpx.AsyncClient, llm: OpenAIStandIn, llm_worker: Worker
) -> None:
    thread = await _thread(api)
    llm.script(Reply(text=""), Reply(text="Hello Ada."))  # the retry answers
    body = await say(api, thread, "Hi")
    assert body["run"]["status"] == "completed" and body["run"]["attempts"] == 2
    assert [m["content"] for m in body["replies"]] == ["Hello Ada."]

    llm.reset()
    llm.default = Reply(text="   ")
    body = await say(api, thread, "Hi again")
    assert body["run"]["status"] == "failed" and body["run"]["error"]["code"] == "empty_output"
    assert body["replies"] == []
    assert not [m for m in await messages_of(api, thread) if m["role"] == "assistant" and not m["content"].strip()]


async def test_usage_the_server_did_not_report_is_marked_estimated(
    api: httpx.AsyncClient, llm: OpenAIStandIn, llm_worker: Worker
) -> None:
    thread = await _thread(api)
    llm.script(Reply(text="Counted by us.", send_usage=False), Reply(text="Counted by the server.", usage=(40, 4)))
    body = await say(api, thread, "Hi")
    usage = body["run"]["usage"]
    assert usage["estimated"] is True and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    [iteration] = body["replies"][0]["iterations"]
    assert iteration["usage"]["estimated"] is True
    body = await say(api, thread, "Again")
    assert body["run"]["usage"] == {"input_tokens": 40, "output_tokens": 4, "total_tokens": 44, "estimated": False}
    assert "estimated" not in body["replies"][0]["iterations"][0]["usage"]


async def test_usage_per_agent_and_day_counts_what_the_runs_did(
    api: httpx.AsyncClient, llm: OpenAIStandIn, shop: Shop, llm_worker: Worker
) -> None:
    thread = await _thread(
        api,
        tools=[shop.tool()],
        pricing={"currency": "EUR", "input_per_million_tokens": 2.0, "output_per_million_tokens": 10.0},
    )
    llm.script(
        Reply(tool_calls=[ToolCallReply("order_status", '{"order": "A1"}')], usage=(1000, 100)),
        Reply(text="Shipped.", usage=(2000, 50)),
        Reply(text="Counted by us.", send_usage=False),
    )
    await say(api, thread, "Where is A1?")
    await say(api, thread, "Thanks")
    llm.default = ErrorReply.model_not_found("gpt-4o-mini")  # not retryable: fails at once
    assert (await say(api, thread, "Bye"))["run"]["status"] == "failed"
    agent_id = (await api.get(f"/v1/threads/{thread['id']}")).json()["agent_id"]
    r = await api.get("/v1/usage", params={"agent_id": agent_id})
    assert r.status_code == 200, r.text
    [row] = r.json()["data"]
    assert row["runs"] == {"completed": 2, "failed": 1, "cancelled": 0, "total": 3}
    assert row["tool_calls"] == 1 and row["estimated_runs"] == 1
    assert row["input_tokens"] > 3000 and row["output_tokens"] > 150
    cost = row["estimated_cost"]
    expected = (row["input_tokens"] * 2.0 + row["output_tokens"] * 10.0) / 1_000_000
    assert cost["currency"] == "EUR" and abs(cost["amount"] - expected) < 1e-6
