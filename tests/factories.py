"""Build test data through the HTTP API, as a client would."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


async def create_agent(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": f"agent-{uuid.uuid4().hex[:6]}", "type": "TEXT", **fields}
    r = await api.post("/v1/agents", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def create_end_user(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"display_name": "Ada", **fields}
    r = await api.post("/v1/end_users", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def create_thread(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    agent_id = fields.pop("agent_id", None) or (await create_agent(api))["id"]
    end_user_id = fields.pop("end_user_id", None) or (await create_end_user(api))["id"]
    r = await api.post("/v1/threads", json={"agent_id": agent_id, "end_user_id": end_user_id, **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def post_message(api: httpx.AsyncClient, thread_id: str, content: str = "hi", **fields: Any) -> dict[str, Any]:
    r = await api.post(f"/v1/threads/{thread_id}/messages", json={"content": content, **fields})
    assert r.status_code == 201, r.text
    return r.json()
