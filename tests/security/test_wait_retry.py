"""A message POSTed with ``wait`` and an ``Idempotency-Key``, retried while the first request still waits or
after its server died in the wait, is found and answered, never stored twice (issue 12, defect 4).

Before the fix both retries got 409 ``idempotency_response_unreadable``, which tells a client to use a new
key, and a new key stores the message a second time; after a crash every retry got that 409 for a day.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.conftest import Tenant, make_tenant
from tests.factories import create_agent, create_end_user, create_thread
from tests.livesrv import kill_server, live_server, server_log
from tests.security.conftest import server_env
from threadline.workspaces.bootstrap import DEMO_FLOW

WITHIN_S = 30.0  # a bound on waits that fail with the server's log, never a timing check


async def _thread(base: str, tenant: Tenant) -> str:
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=WITHIN_S) as api:
        agent = await create_agent(
            api, version={"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW, "settings": {"debounce_s": 0}}
        )
        end_user = await create_end_user(api)
        thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])
    return str(thread["id"])


async def _user_messages(api: httpx.AsyncClient, thread_id: str, content: str) -> list[dict[str, Any]]:
    page = (await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100, "role": "user"})).json()
    return [m for m in page["data"] if m["content"] == content]


async def test_a_retry_during_the_wait_answers_with_the_same_message_and_run(
    database_url: str, settings: Any, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    # No worker: the run stays queued, so the first request waits its whole ``wait``.
    with live_server(database_url, **server_env(settings, THREADLINE_RUN_WORKERS="false")) as base:
        thread_id = await _thread(base, tenant)
        url = f"/v1/threads/{thread_id}/messages"
        headers = {**tenant.headers, "Idempotency-Key": "wait-1"}
        async with (
            httpx.AsyncClient(base_url=base, timeout=WITHIN_S) as api,
            httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=WITHIN_S) as reader,
        ):
            first = asyncio.create_task(api.post(url, params={"wait": 3}, json={"content": "hello"}, headers=headers))
            deadline = time.monotonic() + WITHIN_S
            while not await _user_messages(reader, thread_id, "hello"):
                assert time.monotonic() < deadline, server_log(base)
                await asyncio.sleep(0.05)
            retry = await api.post(url, params={"wait": 3}, json={"content": "hello"}, headers=headers)
            original = await first
            assert original.status_code == 201, original.text
            assert retry.status_code == 201, retry.text
            assert retry.headers.get("idempotent-replayed") == "true"
            assert retry.json()["id"] == original.json()["id"]
            assert retry.json()["run"]["id"] == original.json()["run"]["id"]
            assert retry.json()["replies"] == []
            # Once the first request has answered, its response is the one replayed.
            later = await api.post(url, params={"wait": 3}, json={"content": "hello"}, headers=headers)
            assert later.headers.get("idempotent-replayed") == "true" and later.json() == original.json()
            assert len(await _user_messages(reader, thread_id, "hello")) == 1


async def test_a_retry_after_the_server_died_in_the_wait_answers_with_the_stored_message_and_its_run(
    database_url: str, settings: Any, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    body = {"content": "are you there?"}
    headers = {**tenant.headers, "Idempotency-Key": "crash-1"}
    with live_server(database_url, **server_env(settings, THREADLINE_RUN_WORKERS="false")) as base:
        thread_id = await _thread(base, tenant)
        url = f"/v1/threads/{thread_id}/messages"
        async with httpx.AsyncClient(base_url=base, timeout=WITHIN_S) as api:
            doomed = asyncio.create_task(api.post(url, params={"wait": 30}, json=body, headers=headers))
            deadline = time.monotonic() + WITHIN_S
            async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=WITHIN_S) as reader:
                while not await _user_messages(reader, thread_id, body["content"]):
                    assert time.monotonic() < deadline, server_log(base)
                    await asyncio.sleep(0.05)
            kill_server(base)  # mid-wait: the message is committed, its response never stored
            try:
                await doomed
            except httpx.TransportError:
                pass
    # The same database, a new server, now with workers: the queued run is answered, and the retry says so.
    env = server_env(settings, THREADLINE_RUN_WORKERS="true", THREADLINE_WORKER_POLL_INTERVAL_S="0.1")
    with live_server(database_url, **env) as base:
        async with httpx.AsyncClient(base_url=base, timeout=WITHIN_S) as api:
            retry = await api.post(url, params={"wait": 30}, json=body, headers=headers)
            assert retry.status_code == 201, retry.text + server_log(base)
            assert retry.headers.get("idempotent-replayed") == "true"
            answer = retry.json()
            assert answer["content"] == body["content"]
            assert answer["run"]["status"] == "completed", answer["run"]
            assert answer["replies"], "the run the message started answered it"
            again = await api.post(url, params={"wait": 30}, json=body, headers=headers)
            assert again.status_code == 201 and again.json()["id"] == answer["id"]
            async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=WITHIN_S) as reader:
                assert len(await _user_messages(reader, thread_id, body["content"])) == 1
