"""A run survives its worker being killed -9 in the middle: another worker takes it over once the lease
lapses, and the thread gets exactly one reply."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.factories import create_agent, create_thread
from tests.fakes.openai_server import OpenAIStandIn, Reply
from tests.jobs.test_processes import _env, _start, _stop, _until


async def test_a_run_whose_worker_is_killed_mid_answer_is_finished_by_another_worker_once(
    api: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    with OpenAIStandIn(api_key="sk-test") as llm:
        llm.script(Reply(text="never delivered", delay_s=60))  # the first worker dies waiting for this
        llm.default = Reply(text="Answered after the crash.", chunks=3)
        env = _env(
            database_url,
            THREADLINE_OPENAI_BASE_URL=llm.base_url,
            THREADLINE_OPENAI_API_KEY="sk-test",
            THREADLINE_JOB_LEASE_S="1.5",
            THREADLINE_WORKER_POLL_INTERVAL_S="0.2",
        )
        agent = await create_agent(api, version={"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini"})
        thread = await create_thread(api, agent_id=agent["id"])
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        first = _start(["worker", "--kind", "runs.execute"], env, logs[0])
        second = None
        try:
            r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "are you there?"})
            run_id = r.json()["run"]["id"]
            await asyncio.to_thread(llm.wait_for_requests, 1, 30)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            second = _start(["worker", "--kind", "runs.execute"], env, logs[1])

            async def finished() -> bool:
                return (await api.get(f"/v1/runs/{run_id}")).json()["status"] in ("completed", "failed")

            await _until(finished, 60, "the run to be finished by the second worker", logs)
            run = (await api.get(f"/v1/runs/{run_id}")).json()
        finally:
            for proc in (first, second):
                if proc is not None:
                    _stop(proc)
    assert run["status"] == "completed", run
    # The killed attempt, then the one that finished; on a loaded machine a 1.5 s lease can also lapse under
    # the second worker, which adds an attempt but never a second reply (checked below).
    assert run["attempts"] >= 2
    replies = [m for m in (await api.get(f"/v1/threads/{thread['id']}/messages")).json()["data"] if m["role"] != "user"]
    assert [m["content"] for m in replies] == ["Answered after the crash."]
    assert len(llm.completion_requests) == run["attempts"]  # every attempt asked the model; one reply was kept
