"""An agent version's SMS settings: on a thread whose channel is SMS, ``sms_max_tokens`` and ``sms_temperature``
go to the model instead of ``max_tokens`` and ``temperature`` (each where it is set), and the history's token
budget keeps room for that same reply size. WhatsApp and plain API threads keep the general settings.

The model is an OpenAI-compatible server on 127.0.0.1; what it received is what the agent asked for."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.factories import create_agent, create_end_user, create_thread
from tests.fakes.openai_server import OpenAIStandIn, ReceivedRequest, Reply
from tests.integrations.helpers import create_integration, sms_body, whatsapp_body
from tests.runs.conftest import running_worker
from threadline.jobs.worker import Worker

PROMPT = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "system_prompt": "Be brief."}
GENERAL = {"max_tokens": 400, "temperature": 0.9}
SMS = {"sms_max_tokens": 120, "sms_temperature": 0.2}
PHONES = (f"+1415555{n:04d}" for n in itertools.count(100))  # an end user per address and channel


@pytest.fixture
def llm() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-test") as server:
        server.default = Reply(text="Noted.")
        yield server


@pytest.fixture
async def llm_worker(sessionmaker: Any, settings: Any, llm: OpenAIStandIn) -> AsyncIterator[Worker]:
    """A worker for runs only: delivery jobs of the SMS replies stay queued, which these tests do not look at."""
    tuned = settings.replace(openai_base_url=llm.base_url, openai_api_key=SecretStr("sk-test"))
    async with running_worker(sessionmaker, tuned, concurrency=2) as worker:
        yield worker


async def _thread_on(api: httpx.AsyncClient, channel: str, agent: dict[str, Any]) -> dict[str, Any]:
    """A thread of ``agent`` on a new integration of this channel (``api``: no integration at all)."""
    if channel == "api":
        return await create_thread(api, agent_id=agent["id"])
    body = sms_body() if channel == "sms" else whatsapp_body()
    integration = await create_integration(api, body)
    end_user = await create_end_user(api, channel=channel, address=next(PHONES))
    return await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"], integration_id=integration["id"])


async def _ask(api: httpx.AsyncClient, llm: OpenAIStandIn, thread: dict[str, Any], content: str) -> ReceivedRequest:
    """Sends an end user's message, waits for the answer, and returns the model call that made it."""
    before = len(llm.completion_requests)
    r = await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": content})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["run"]["status"] == "completed", body["run"]
    assert [m["content"] for m in body["replies"]] == ["Noted."]
    (request,) = llm.completion_requests[before:]
    return request


async def test_an_sms_thread_sends_the_versions_sms_settings_to_the_model(
    api: httpx.AsyncClient, llm: OpenAIStandIn, llm_worker: Worker
) -> None:
    agent = await create_agent(api, version={**PROMPT, **GENERAL, **SMS})
    thread = await _thread_on(api, "sms", agent)
    request = await _ask(api, llm, thread, "When do you open?")
    assert (request.max_tokens, request.temperature) == (120, 0.2)
    assert request.messages[-1] == {"role": "user", "content": "When do you open?"}
    # The reply waits for delivery like any SMS reply.
    replies = (await api.get(f"/v1/threads/{thread['id']}/messages", params={"role": "assistant"})).json()["data"]
    assert [(m["content"], m["status"]) for m in replies] == [("Noted.", "QUEUED")]


@pytest.mark.parametrize("channel", ["api", "whatsapp"])
async def test_other_channels_keep_max_tokens_and_temperature(
    api: httpx.AsyncClient, llm: OpenAIStandIn, llm_worker: Worker, channel: str
) -> None:
    agent = await create_agent(api, version={**PROMPT, **GENERAL, **SMS})
    thread = await _thread_on(api, channel, agent)
    request = await _ask(api, llm, thread, "When do you open?")
    assert (request.max_tokens, request.temperature) == (400, 0.9)


async def test_an_unset_sms_setting_falls_back_to_the_general_one(
    api: httpx.AsyncClient, llm: OpenAIStandIn, llm_worker: Worker
) -> None:
    # Only the temperature has an SMS value, and it is 0: a value, not an unset one.
    agent = await create_agent(api, version={**PROMPT, **GENERAL, "sms_temperature": 0})
    request = await _ask(api, llm, await _thread_on(api, "sms", agent), "hi")
    assert (request.max_tokens, request.temperature) == (400, 0)
    # Neither set: an SMS thread runs with max_tokens and temperature.
    plain = await create_agent(api, version={**PROMPT, **GENERAL})
    request = await _ask(api, llm, await _thread_on(api, "sms", plain), "hi")
    assert (request.max_tokens, request.temperature) == (400, 0.9)


async def test_the_history_budget_keeps_room_for_the_sms_reply_size(
    api: httpx.AsyncClient, llm: OpenAIStandIn, llm_worker: Worker
) -> None:
    # A 4,000-token window: a ~600-token message fits beside a 100-token reply, not beside a 3,500-token one.
    version = {**PROMPT, "max_tokens": 100, "sms_max_tokens": 3_500, "settings": {"context_window": 4_000}}
    agent = await create_agent(api, version=version)
    long_message = "word " * 600
    on_api = await _ask(api, llm, await _thread_on(api, "api", agent), long_message)
    assert on_api.max_tokens == 100 and [m["role"] for m in on_api.messages] == ["system", "user"]
    on_sms = await _ask(api, llm, await _thread_on(api, "sms", agent), long_message)
    assert on_sms.max_tokens == 3_500 and [m["role"] for m in on_sms.messages] == ["system"]
