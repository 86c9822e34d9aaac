"""Talking to a thread through /v1 the way a client does: POST with ``wait`` and read the answer back."""

from __future__ import annotations

from typing import Any

import httpx


async def say(api: httpx.AsyncClient, thread: dict[str, Any], text: str, *, wait: float = 20) -> dict[str, Any]:
    """POST the end user's ``text`` and wait for the run it starts to end; the response body."""
    r = await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": wait}, json={"content": text})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["run"]["status"] in ("completed", "failed", "cancelled"), body["run"]
    return body


async def messages_of(api: httpx.AsyncClient, thread: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread['id']}/messages", params={"limit": 100})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data
