"""A workspace holding one of everything the vendors' documents can show, built through /v1 as a client
would, then taken through the delivery lifecycle in the database (the channels that drive it in production
are stood in for here): every message type, role, status and direction, operator messages, tool calls and
iterations, provider fields, tags and assignees."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.kit.ids import parse_uuid
from threadline.models import Message

TOOL_CALLS = [
    {
        "id": "call_1",
        "name": "lookup_order",
        "arguments": {"order_id": "A-17"},
        "result": {"status": "shipped"},
        "duration_ms": 41,
        "error": None,
    }
]
ITERATIONS = [
    {
        "index": 0,
        "text": "I should look the order up.",
        "tool_calls": ["call_1"],
        "usage": {"input_tokens": 120, "output_tokens": 18},
        "duration_ms": 310,
    },
    {
        "index": 1,
        "text": None,
        "tool_calls": [],
        "usage": {"input_tokens": 160, "output_tokens": 12},
        "duration_ms": 205,
    },
]
MEDIA = {
    "image": "https://cdn.example.com/p.jpg",
    "audio": "https://cdn.example.com/v.ogg",
    "video": "https://cdn.example.com/c.mp4",
    "document": "https://cdn.example.com/invoice.pdf",
}


@dataclass
class Seeded:
    agent: dict[str, Any]
    end_user: dict[str, Any]
    user: dict[str, Any]
    tag: dict[str, Any]
    thread: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)  # as /v1 showed them when created
    other_threads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def thread_id(self) -> str:
        return str(self.thread["id"])

    @property
    def thread_number(self) -> int:
        return int(self.thread["number"])


async def _post(api: httpx.AsyncClient, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(f"/v1/threads/{thread_id}/messages", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def seed_everything(api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]) -> Seeded:
    """``api`` is authenticated as the workspace's admin. End-user messages queue runs of the thread's agent;
    they are cancelled, so the store stays as seeded whatever workers run later."""
    r = await api.post(
        "/v1/agents",
        json={
            "name": "Support",
            "description": "Answers order questions",
            "type": "TEXT",
            "version": {"mode": "PROMPT", "model": "gpt-4o-mini", "temperature": 0.4, "max_tokens": 160},
        },
    )
    assert r.status_code == 201, r.text
    agent = r.json()
    end_user = (await api.post("/v1/end_users", json={"display_name": "Ada Lovelace", "info": "VIP"})).json()
    user = (await api.post("/v1/users", json={"email": "op@example.com", "first_name": "Grace"})).json()
    tag = (await api.post("/v1/tags", json={"name": "billing", "color": "purple"})).json()
    r = await api.post(
        "/v1/threads",
        json={"agent_id": agent["id"], "end_user_id": end_user["id"], "tags": [tag["id"]], "assigned_to": [user["id"]]},
    )
    assert r.status_code == 201, r.text
    thread = r.json()
    seeded = Seeded(agent=agent, end_user=end_user, user=user, tag=tag, thread=thread)
    tid = seeded.thread_id
    bodies: list[dict[str, Any]] = [
        {"content": "Where is my **order** A-17?"},
        {"role": "assistant", "content": "It shipped yesterday.", "tool_calls": TOOL_CALLS, "iterations": ITERATIONS},
        {"role": "assistant", "content": "Hello from a human.", "user_id": user["id"]},
        {"role": "system", "content": "Conversation handed to a human."},
        {"role": "tool", "content": '{"status": "shipped"}'},
        {"role": "hidden", "content": "internal note"},
        {"role": "assistant", "content": "", "tool_calls": [], "iterations": []},
        {
            "role": "assistant",
            "type": "button",
            "content": "Pick one",
            "blocks": [{"type": "buttons", "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}],
        },
        {"role": "assistant", "type": "template", "content": "Your code is 1234", "blocks": [{"type": "template"}]},
        {"source": "ui", "content": "typed in the console", "metadata": {"k": "v"}},
        {"source": "mcp", "content": "from an MCP client"},
    ]
    for kind, url in MEDIA.items():
        bodies.append({"type": kind, "media_url": url, "content": f"a {kind}"})
        bodies.append({"role": "assistant", "type": kind, "media_url": url})
    bodies[6]["content"] = "No tools were needed."
    for body in bodies:
        seeded.messages.append(await _post(api, tid, body))
    # Nothing answers here, and a worker of another test must not answer for us either: end the queued runs.
    for run_id in {m["run"]["id"] for m in seeded.messages if m.get("run")}:
        r = await api.post(f"/v1/runs/{run_id}/cancel")
        assert r.status_code in (200, 409), r.text
    await _walk_lifecycle(sessionmaker, seeded.messages)
    # Re-read: the statuses and provider fields set above.
    r = await api.get(f"/v1/threads/{tid}/messages", params={"limit": 100})
    seeded.messages = r.json()["data"]
    # A second and an empty thread, so that ids from other threads and empty lists are exercised.
    for _ in range(2):
        r = await api.post("/v1/threads", json={"agent_id": agent["id"], "end_user_id": end_user["id"]})
        seeded.other_threads.append(r.json())
    other = await _post(api, seeded.other_threads[0]["id"], {"content": "another thread"})
    if other.get("run"):
        await api.post(f"/v1/runs/{other['run']['id']}/cancel")
    return seeded


async def _walk_lifecycle(sessionmaker: async_sessionmaker[AsyncSession], created: list[dict[str, Any]]) -> None:
    """Give the outbound messages every delivery status, with the provider's fields a channel would set."""
    base = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    outbound = [m for m in created if m["direction"] == "OUTBOUND"]
    inbound = [m for m in created if m["direction"] == "INBOUND"]
    plan: list[tuple[dict[str, Any], dict[str, Any]]] = []
    statuses = ["QUEUED", "SENDING", "SENT", "DELIVERED", "READ", "FAILED", "UNDELIVERED"]
    for i, m in enumerate(outbound):
        status = statuses[i % len(statuses)]
        values: dict[str, Any] = {"status": status}
        if status not in ("QUEUED", "SENDING"):
            values.update(
                external_id=f"SM{i:032x}",
                provider_account_id="AC" + "0" * 32,
                segments=1 + i % 3,
                price=f"-0.00{7 + i % 3}",
                price_currency="USD",
                sent_at=base + timedelta(seconds=i),
            )
        if status in ("DELIVERED", "READ"):
            values["delivered_at"] = base + timedelta(seconds=i + 2)
        if status == "READ":
            values["read_at"] = base + timedelta(seconds=i + 9)
        if status in ("FAILED", "UNDELIVERED"):
            values.update(error_code="30007", error_message="Message filtered", failed_at=base + timedelta(seconds=i))
        plan.append((m, values))
    if inbound:
        plan.append((inbound[-1], {"status": "DISCARDED"}))
    async with sessionmaker() as session, session.begin():
        for m, values in plan:
            await session.execute(update(Message).where(Message.public_id == parse_uuid(m["id"])).values(**values))
