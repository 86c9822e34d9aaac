"""A PROMPT agent answering through the real ``openai`` SDK against an OpenAI-compatible server on
127.0.0.1: streaming, and a two-step tool loop (an HTTP tool on another local server) recorded in the
reply's tool_calls and iterations."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from tests.events.sse import frames
from tests.factories import create_agent, create_end_user, create_thread
from tests.fakes.openai_server import OpenAIStandIn, Reply, ToolCallReply
from tests.fakes.shop import Shop
from tests.runs.conftest import running_worker
from threadline.jobs.worker import Worker


@pytest.fixture
def llm() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-test") as server:
        yield server


@pytest.fixture
def shop() -> Iterator[Shop]:
    """The business's own API, which the agent's HTTP tool calls."""
    s = Shop()
    yield s
    s.close()


@pytest.fixture
async def llm_worker(sessionmaker: Any, settings: Any, llm: OpenAIStandIn) -> AsyncIterator[Worker]:
    tuned = settings.replace(
        openai_base_url=llm.base_url,
        openai_api_key=SecretStr("sk-test"),
        tools_allow_private_urls=True,  # the shop runs on 127.0.0.1 here
    )
    async with running_worker(sessionmaker, tuned, concurrency=2) as worker:
        yield worker


async def test_a_prompt_agent_streams_its_answer_after_a_two_step_tool_loop_through_the_openai_sdk(
    api: httpx.AsyncClient,
    llm: OpenAIStandIn,
    shop: Shop,
    llm_worker: Worker,
    sessionmaker: Any,
) -> None:
    tool = {
        "type": "http",
        "name": "order_status",
        "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
        "url": shop.url,
        "headers": {"Authorization": "Bearer shop-key"},
    }
    agent = await create_agent(
        api,
        version={
            "mode": "PROMPT",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "system_prompt": "You are the shop's assistant.",
            "temperature": 0.2,
            "max_tokens": 300,
            "tools": [tool, {"type": "add_tag"}],
        },
    )
    shown = agent["current_version"]["tools"][0]
    assert shown["headers"] == {"Authorization": "[redacted]"}  # the shop's credentials are write-only
    assert "shop-key" not in (await api.get(f"/v1/agents/{agent['id']}")).text
    async with sessionmaker() as s:  # nor in a database dump: sealed with the server's secret key
        stored = (await s.execute(text("SELECT tools FROM agent_versions"))).all()
    assert stored and not any("shop-key" in str(row[0]) for row in stored)
    user = await create_end_user(api, display_name="Ada")
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=user["id"])
    llm.script(
        Reply(
            text="Let me check.",
            reasoning="The user wants order status; call the tool.",
            tool_calls=[
                ToolCallReply("order_status", '{"order": "A1"}', fragments=4),
                ("add_tag", '{"name": "orders"}'),
            ],
            usage=(120, 30),
        ),
        Reply(text="Your order A1 has shipped and arrives Friday.", chunks=5, usage=(180, 12)),
    )
    events = []
    async with api.stream(
        "POST", f"/v1/threads/{thread['id']}/messages", params={"stream": "true"}, json={"content": "Where is A1?"}
    ) as r:
        assert r.status_code == 201
        async for f in frames(r):
            if f.event:
                events.append((f.event, f.json))
    assert events[-1][0] == "run.completed"
    run = events[-1][1]["data"]
    assert run["usage"] == {"input_tokens": 300, "output_tokens": 42, "total_tokens": 342, "estimated": False}
    deltas = "".join(e["data"]["delta"] for t, e in events if t == "message.delta")
    assert "Your order A1 has shipped and arrives Friday." in deltas
    reply = next(e["data"] for t, e in events if t == "message.created" and e["data"]["role"] == "assistant")
    assert reply["content"] == "Your order A1 has shipped and arrives Friday."
    lookup, tag = reply["tool_calls"]
    assert lookup["name"] == "order_status" and lookup["arguments"] == {"order": "A1"}
    assert lookup["result"] == {"order": "A1", "status": "shipped", "eta": "Friday"}
    assert tag["name"] == "add_tag" and tag["result"] == "Tagged 'orders'."
    first, second = reply["iterations"]
    assert first["reasoning"] == "The user wants order status; call the tool." and first["text"] == "Let me check."
    assert first["tool_calls"] == [lookup["id"], tag["id"]] and first["usage"]["input_tokens"] == 120
    assert second["tool_calls"] == [] and second["finish_reason"] == "stop"
    assert [c["body"] for c in shop.calls] == [{"order": "A1"}] and shop.authorization == ["Bearer shop-key"]

    # What went over the wire, as OpenAI expects it.
    one, two = llm.completion_requests
    assert one.authorization == "Bearer sk-test" and one.model == "gpt-4o-mini" and one.stream
    assert one.temperature == 0.2 and one.max_tokens == 300
    assert [t["function"]["name"] for t in one.tools or []] == ["order_status", "add_tag"]
    assert one.messages[0]["role"] == "system" and "shop's assistant" in one.messages[0]["content"]
    assert one.messages[-1] == {"role": "user", "content": "Where is A1?"}
    assert [m["role"] for m in two.messages[-3:]] == ["assistant", "tool", "tool"]
    assert two.messages[-3]["tool_calls"][0]["function"]["name"] == "order_status"
    assert json.loads(two.messages[-2]["content"])["status"] == "shipped"
    assert two.messages[-2]["tool_call_id"] == lookup["id"]
