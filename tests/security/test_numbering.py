"""Defect 9 of issue 12, staged against a real server: the integer ids of threads and messages (/v1's
``number``, camelAI's ids) came from one sequence for every workspace, so a tenant that wrote a thread and a
message, waited, and wrote again learned from the gap how many threads and messages every other tenant had
written meanwhile. Each workspace now counts its own: the gap is what the tenant itself wrote."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_tenant
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.livesrv import live_server
from threadline.config import Settings

from .conftest import server_env

CAMELAI = "/camelai/api/v1/threads/{}/messages"


@pytest.fixture(scope="module")
def base(database_url: str, engine: Any, settings: Settings) -> Iterator[str]:
    with live_server(database_url, **server_env(settings)) as url:
        yield url


async def _probe(spy: httpx.AsyncClient, agent_id: str, end_user_id: str) -> tuple[int, int]:
    """What the spying tenant can see: the numbers of a thread and a message it writes now."""
    thread = await create_thread(spy, agent_id=agent_id, end_user_id=end_user_id)
    message = await post_message(spy, thread["id"], "probe")
    camel = await spy.get(CAMELAI.format(thread["number"]), headers={"Authorization": spy.headers["Authorization"]})
    assert camel.status_code == 200, camel.text
    assert camel.json()["thread_id"] == thread["number"]
    assert [m["id"] for m in camel.json()["messages"]] == [message["number"]]
    return thread["number"], message["number"]


async def test_another_tenants_activity_does_not_show_in_a_tenants_numbers(base: str, sessionmaker: Any) -> None:
    spy_tenant, busy_tenant = await make_tenant(sessionmaker), await make_tenant(sessionmaker)
    async with (
        httpx.AsyncClient(base_url=base, headers=spy_tenant.headers, timeout=30) as spy,
        httpx.AsyncClient(base_url=base, headers=busy_tenant.headers, timeout=30) as busy,
    ):
        agent, end_user = await create_agent(spy), await create_end_user(spy)
        first = await _probe(spy, agent["id"], end_user["id"])
        # The other tenant's traffic between the two probes: 12 threads, 36 messages.
        for i in range(12):
            thread = await create_thread(busy)
            for j in range(3):
                await post_message(busy, thread["id"], f"busy {i}.{j}")
        second = await _probe(spy, agent["id"], end_user["id"])
    # A new workspace starts at 1, and moves by what it wrote itself: one thread, one message.
    assert first == (1, 1), f"the spy's first numbers {first} count other workspaces' rows"
    assert second == (2, 2), f"the spy's numbers moved {first} -> {second}: the other tenant's traffic"
