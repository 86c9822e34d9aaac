"""The OpenAI mount's tests: the real ``openai`` SDK against a real server process (with its worker) whose PROMPT
agents answer through an OpenAI-compatible stand-in on 127.0.0.1, and whose tools call the shop stand-in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Tenant, make_tenant
from tests.dialects.openai.spec import AsyncCheckedTransport, CheckedTransport
from tests.fakes.openai_server import OpenAIStandIn, ScriptedAnswers
from tests.fakes.shop import Shop
from tests.livesrv import agent_server_env, live_server, server_log

# A FLOW agent that answers every message at once, with no model: "You said: <the message>".
FLOW_ECHO = {
    "start": "echo",
    "nodes": {
        "echo": {"type": "send", "text": "You said: {{input.text}}", "next": "listen"},
        "listen": {"type": "ask", "next": "echo"},
    },
}


@pytest.fixture(scope="module")
def answers() -> ScriptedAnswers:
    return ScriptedAnswers()


@pytest.fixture(scope="module")
def llm(answers: ScriptedAnswers) -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-stand-in") as server:
        server.default = answers
        yield server


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    s = Shop()
    yield s
    s.close()


@pytest.fixture(scope="module")
def live(database_url: str, engine: Any, settings: Any, llm: OpenAIStandIn) -> Iterator[str]:
    """A server process with its worker, its PROMPT agents answering through ``llm``; yields the base URL."""
    with live_server(
        database_url,
        **agent_server_env(settings, llm.base_url),
        THREADLINE_MESSAGE_WAIT_MAX_S="20",
        THREADLINE_RATE_LIMIT_PER_KEY="none",
        THREADLINE_RATE_LIMIT_PER_ADDRESS="none",
        THREADLINE_RATE_LIMIT_AUTH_FAILURES="none",
    ) as base:
        yield base


@dataclass
class Workspace:
    """A fresh workspace on the live server: its admin key, a /v1 client and the SDK's clients for ``/openai/v1``."""

    tenant: Tenant
    base: str
    v1: httpx.Client
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    transport: CheckedTransport | None = None
    async_transport: AsyncCheckedTransport | None = None

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        """The sync client, every answer it gets checked against OpenAI's document (``spec``)."""
        self.transport = CheckedTransport()
        return openai.OpenAI(
            api_key=key or self.tenant.key,
            base_url=f"{self.base}/openai/v1",
            max_retries=0,
            http_client=httpx.Client(transport=self.transport),
        )

    def async_sdk(self, key: str | None = None) -> openai.AsyncOpenAI:
        self.async_transport = AsyncCheckedTransport()
        return openai.AsyncOpenAI(
            api_key=key or self.tenant.key,
            base_url=f"{self.base}/openai/v1",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=self.async_transport),
        )

    def agent(self, name: str, version: dict[str, Any]) -> dict[str, Any]:
        r = self.v1.post("/v1/agents", json={"name": name, "type": "TEXT", "version": version})
        assert r.status_code == 201, r.text
        self.agents[name] = r.json()
        return self.agents[name]

    def flow_agent(self, name: str = "echo") -> dict[str, Any]:
        return self.agent(name, {"mode": "FLOW", "provider": "flow", "flow": FLOW_ECHO})

    def prompt_agent(self, name: str = "assistant", **version: Any) -> dict[str, Any]:
        spec = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "max_tokens": 200, **version}
        return self.agent(name, spec)

    def log(self) -> str:
        return server_log(self.base)[-5000:]


@pytest.fixture
async def workspace(live: str, sessionmaker: Any) -> AsyncIterator[Workspace]:
    tenant = await make_tenant(sessionmaker)
    with httpx.Client(base_url=live, headers=tenant.headers, timeout=30) as v1:
        yield Workspace(tenant, live, v1)


@pytest.fixture
async def other(live: str, sessionmaker: Any) -> AsyncIterator[Workspace]:
    """Another workspace on the same server."""
    tenant = await make_tenant(sessionmaker)
    with httpx.Client(base_url=live, headers=tenant.headers, timeout=30) as v1:
        yield Workspace(tenant, live, v1)


def unique(text: str) -> str:
    """A message no other test sends (the stand-in answers by the message)."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"
