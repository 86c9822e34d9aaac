"""Runs: an end user's message makes the agent answer, one run at a time per thread, with tools and
handoff; through HTTP, with a worker in this process and a scripted provider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.runs.conftest import until
from tests.runs.scripted import ScriptedProvider, Step
from threadline.events.repository import EventRepository


async def _prompt_thread(api: httpx.AsyncClient, **version: Any) -> dict[str, Any]:
    spec = {"mode": "PROMPT", "provider": "openai", "model": "test-model", "system_prompt": "Be brief.", **version}
    agent = await create_agent(api, version=spec)
    user = await create_end_user(api, display_name="Grace")
    return await create_thread(api, agent_id=agent["id"], end_user_id=user["id"])


async def _messages(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def _run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    r = await api.get(f"/v1/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def test_an_end_user_message_starts_a_run_whose_reply_is_stored_with_usage_and_events(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any, provider: ScriptedProvider, worker: Any
) -> None:
    thread = await _prompt_thread(api)
    provider.script(Step(text="Hello Grace, how can I help?"))
    r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "hi there"})
    assert r.status_code == 201, r.text
    created = r.json()
    run = created["run"]
    # This process's worker took the job at birth: the run is the thread's running run from the POST's commit.
    assert run["status"] == "running" and run["started_at"] and run["thread_id"] == thread["id"]
    assert run["trigger_message_id"] == created["id"] and created["replies"] is None

    async def finished() -> bool:
        return (await _run(api, run["id"]))["status"] == "completed"

    await until(finished)
    done = await _run(api, run["id"])
    assert done["usage"] == {"input_tokens": 10, "output_tokens": 6, "total_tokens": 16, "estimated": False}
    assert done["started_at"] and done["finished_at"] and done["error"] is None and done["attempts"] == 1
    user_msg, reply = await _messages(api, thread["id"])
    assert reply["role"] == "assistant" and reply["sent_by"] == "agent"
    assert reply["content"] == "Hello Grace, how can I help?"
    assert reply["in_response_to"] == user_msg["id"]
    assert reply["iterations"][0]["index"] == 0 and reply["tool_calls"] is None
    # What the model saw: the system prompt with who it talks to, then the conversation.
    sent = provider.requests[0].messages
    assert sent[0].role == "system" and "Be brief." in (sent[0].content or "") and "Grace" in (sent[0].content or "")
    assert [(m.role, m.content) for m in sent[1:]] == [("user", "hi there")]
    async with sessionmaker() as s:
        types = [e.type for e in await EventRepository(s, tenant.workspace_id).after(0, limit=100)]
    assert types[-5:] == ["message.created", "run.queued", "run.started", "message.created", "run.completed"]
    listed = (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"]
    assert [x["id"] for x in listed] == [run["id"]]


async def test_wait_returns_the_replies_with_the_created_message(
    api: httpx.AsyncClient, provider: ScriptedProvider, worker: Any
) -> None:
    thread = await _prompt_thread(api)
    provider.script(Step(text="Waited reply"))
    r = await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "hello?"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["run"]["status"] == "completed"
    assert [m["content"] for m in body["replies"]] == ["Waited reply"]
    assert body["replies"][0]["in_response_to"] == body["id"]


async def test_a_two_step_tool_loop_is_recorded_in_tool_calls_and_iterations(
    api: httpx.AsyncClient, provider: ScriptedProvider, worker: Any
) -> None:
    thread = await _prompt_thread(api, tools=[{"type": "add_tag", "allowed": ["vip", "refund"]}])
    provider.script(
        Step(text="Let me tag this.", tool_calls=[("add_tag", json.dumps({"name": "refund"}))]),
        Step(tool_calls=[("add_tag", '{"name": "nonsense"}'), ("missing_tool", "{}")]),
        Step(text="Done, I tagged your request."),
    )
    body = (
        await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "refund pls"})
    ).json()
    (reply,) = body["replies"]
    assert reply["content"] == "Done, I tagged your request."
    calls = reply["tool_calls"]
    assert [c["name"] for c in calls] == ["add_tag", "add_tag", "missing_tool"]
    assert calls[0]["arguments"] == {"name": "refund"} and calls[0]["result"] == "Tagged 'refund'."
    assert "not one of the allowed tags" in calls[1]["error"] and "no tool named" in calls[2]["error"]
    assert all("duration_ms" in c for c in calls)
    its = reply["iterations"]
    assert [i["index"] for i in its] == [0, 1, 2]
    assert its[0]["text"] == "Let me tag this." and len(its[0]["tool_calls"]) == 1 and len(its[1]["tool_calls"]) == 2
    assert its[2]["tool_calls"] == [] and all(i["usage"]["input_tokens"] == 10 for i in its)
    # The model was told each result (errors included) before its next call.
    second = provider.requests[1].messages
    assert second[-1].role == "tool" and "Tagged" in (second[-1].content or "")
    third = provider.requests[2].messages
    assert [m.role for m in third[-2:]] == ["tool", "tool"] and "error" in (third[-1].content or "")
    tags = (await api.get(f"/v1/threads/{thread['id']}")).json()["tags"]
    assert [t["name"] for t in tags] == ["refund"]

    # The next run sees what the agent did before: its calls, their results, then its answer.
    provider.script(Step(text="Anything else?"))
    await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "thanks"})
    seen = [(m.role, m.content, [c.name for c in m.tool_calls], m.tool_call_id) for m in provider.requests[-1].messages]
    ids = [c["id"] for c in calls]
    assert seen[1:] == [
        ("user", "refund pls", [], None),
        ("assistant", None, ["add_tag", "add_tag", "missing_tool"], None),
        ("tool", "Tagged 'refund'.", [], ids[0]),
        ("tool", json.dumps({"error": calls[1]["error"]}), [], ids[1]),
        ("tool", json.dumps({"error": calls[2]["error"]}), [], ids[2]),
        ("assistant", "Done, I tagged your request.", [], None),
        ("user", "thanks", [], None),
    ]


async def test_the_agent_hands_off_to_a_human_and_then_stays_quiet(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any, provider: ScriptedProvider, worker: Any
) -> None:
    thread = await _prompt_thread(api, tools=[{"type": "handoff_to_human"}])
    provider.script(
        Step(tool_calls=[("handoff_to_human", '{"reason": "wants a person"}')]),
        Step(text="A colleague will be with you shortly."),
    )
    body = (
        await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "human please"})
    ).json()
    assert [m["content"] for m in body["replies"]] == ["A colleague will be with you shortly."]
    assert (await api.get(f"/v1/threads/{thread['id']}")).json()["active"] is False
    later = (await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "hello?"})).json()
    assert later["run"] is None  # a human has the thread: no run
    async with sessionmaker() as s:
        log = await EventRepository(s, tenant.workspace_id).after(0, limit=100)
    handoff = [e for e in log if e.type == "thread.handoff_started"]
    assert len(handoff) == 1 and handoff[0].data["by"] == "agent" and handoff[0].data["reason"] == "wants a person"
    # An operator answers as themselves, which starts no run either; handing back makes the agent answer again
    # knowing what the human said.
    user = (await api.post("/v1/users", json={"email": "op@example.com", "first_name": "Op"})).json()
    op = await post_message(api, thread["id"], "I refunded you.", role="assistant", user_id=user["id"])
    assert op["sent_by"] == "operator"
    r = await api.patch(f"/v1/threads/{thread['id']}", json={"active": True})
    assert r.status_code == 200
    provider.script(Step(text="Glad it is sorted."))
    body = (
        await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "thanks!"})
    ).json()
    assert [m["content"] for m in body["replies"]] == ["Glad it is sorted."]
    seen = provider.requests[-1].messages
    assert "human operator" in (seen[0].content or "")
    assert ("assistant", "[human operator] I refunded you.") in [(m.role, m.content) for m in seen]


async def test_a_takeover_while_the_model_thinks_keeps_the_answer_hidden(
    api: httpx.AsyncClient, provider: ScriptedProvider, worker: Any
) -> None:
    thread = await _prompt_thread(api)
    gate = asyncio.Event()
    provider.script(Step(text="Too late answer", gate=gate))
    run = (await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "hi"})).json()["run"]
    await asyncio.wait_for(provider.started.wait(), 10)
    assert (await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})).status_code == 200
    gate.set()

    async def ended() -> bool:
        return (await _run(api, run["id"]))["status"] == "cancelled"

    await until(ended)
    assert (await _run(api, run["id"]))["error"]["code"] == "human_handoff"
    roles = [(m["role"], m["content"]) for m in await _messages(api, thread["id"])]
    assert roles == [("user", "hi"), ("hidden", "Too late answer")]


async def test_blocked_threads_and_discard_inbound_start_no_run(api: httpx.AsyncClient, provider: Any) -> None:
    blocked = await _prompt_thread(api)
    await api.patch(f"/v1/threads/{blocked['id']}", json={"blocked": True})
    assert (await api.post(f"/v1/threads/{blocked['id']}/messages", json={"content": "x"})).json()["run"] is None
    discarding = await _prompt_thread(api, discard_inbound=True)
    body = (await api.post(f"/v1/threads/{discarding['id']}/messages", json={"content": "x"})).json()
    assert body["run"] is None and body["status"] == "DISCARDED"
    assert (await api.get(f"/v1/threads/{discarding['id']}/runs")).json()["data"] == []


async def test_double_texts_get_one_run_at_a_time_and_every_message_is_answered_once(
    api: httpx.AsyncClient, provider: ScriptedProvider, worker: Any
) -> None:
    thread = await _prompt_thread(api)
    gate = asyncio.Event()
    provider.script(Step(text="first answer", gate=gate))
    provider.default = Step(text="later answer")
    await post_message(api, thread["id"], "one")
    await asyncio.wait_for(provider.started.wait(), 10)
    # While the first run thinks, four more messages arrive at once.
    await asyncio.gather(*(post_message(api, thread["id"], f"more {i}") for i in range(4)))
    gate.set()

    async def settled() -> bool:
        runs = (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"]
        return bool(runs) and all(r["status"] == "completed" for r in runs)

    await until(settled)
    runs = (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"]
    assert len(runs) == 2  # the four double texts joined one queued run
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    assert spans[0][1] <= spans[1][0]  # never two at once
    messages = await _messages(api, thread["id"])
    assert [m["role"] for m in messages] == ["user"] * 5 + ["assistant"] * 2
    assert [m["content"] for m in messages[5:]] == ["first answer", "later answer"]
    # The second run answers the four double texts (it saw them all), the first only "one".
    assert messages[5]["in_response_to"] == messages[0]["id"]
    assert messages[6]["in_response_to"] == messages[4]["id"]
    first_seen = [m.content for m in provider.requests[0].messages if m.role == "user"]
    assert first_seen == ["one"]
    second_seen = [m.content for m in provider.requests[1].messages if m.role == "user"]
    assert second_seen[0] == "one" and sorted(second_seen[1:]) == [f"more {i}" for i in range(4)]
    # ...and the first run's answer right after "one", which it answered: the model does not answer it again.
    conversation = [(m.role, m.content) for m in provider.requests[1].messages if m.role != "system"]
    assert conversation[:2] == [("user", "one"), ("assistant", "first answer")], conversation
    assert [role for role, _ in conversation[2:]] == ["user"] * 4


async def test_a_failing_provider_is_retried_then_the_run_fails_with_a_note(
    api: httpx.AsyncClient, provider: ScriptedProvider, worker: Any
) -> None:
    from threadline.engines.providers.base import ProviderError

    thread = await _prompt_thread(api)
    provider.script(Step(error=ProviderError("upstream 503", retryable=True)), Step(text="recovered"))
    body = (await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "a"})).json()
    assert body["run"]["status"] == "completed" and body["run"]["attempts"] == 2
    assert [m["content"] for m in body["replies"]] == ["recovered"]

    provider.script(Step(error=ProviderError("invalid api key", retryable=False, code="authentication")))
    body = (await api.post(f"/v1/threads/{thread['id']}/messages", params={"wait": 10}, json={"content": "b"})).json()
    assert body["run"]["status"] == "failed"
    assert body["run"]["error"] == {"code": "authentication", "message": "invalid api key"}
    note = (await _messages(api, thread["id"]))[-1]
    assert note["role"] == "system" and "authentication" in note["content"]


async def test_cancelling_runs(api: httpx.AsyncClient, provider: ScriptedProvider) -> None:
    thread = await _prompt_thread(api)
    run = (await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "x"})).json()["run"]
    r = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"
    assert (await api.get("/v1/runs/00000000-0000-7000-8000-000000000000")).status_code == 404


async def test_stream_true_answers_with_the_message_deltas_and_the_reply_as_server_sent_events(
    api: httpx.AsyncClient, provider: ScriptedProvider, worker: Any
) -> None:
    from tests.events.sse import frames

    thread = await _prompt_thread(api, tools=[{"type": "add_tag"}])
    provider.script(
        Step(tool_calls=[("add_tag", '{"name": "streamed"}')]),
        Step(text="one two three four"),
    )
    events = []
    async with api.stream(
        "POST", f"/v1/threads/{thread['id']}/messages", params={"stream": "true"}, json={"content": "go"}
    ) as r:
        assert r.status_code == 201 and r.headers["content-type"].startswith("text/event-stream")
        async for f in frames(r):
            if f.event:
                events.append((f.event, f.id, f.json))
    types = [t for t, _, _ in events]
    assert types[0] == "message.created" and events[0][2]["data"]["content"] == "go"
    assert types[-1] == "run.completed"
    assert "run.started" in types and "thread.updated" in types  # the tag, as it happened
    deltas = [e for t, _, e in [(t, i, e) for t, i, e in events] if t == "message.delta"]
    assert deltas and all(d["seq"] is None for d in deltas)
    assert "".join(d["data"]["delta"] for d in deltas).split() == ["one", "two", "three", "four"]
    reply = next(e for t, _, e in events if t == "message.created" and e["data"]["role"] == "assistant")
    assert reply["data"]["content"] == "one two three four" and reply["data"]["tool_calls"][0]["name"] == "add_tag"
    (tool_call,) = [e for t, _, e in events if t == "message.tool_call"]  # as it happened, before the reply
    assert tool_call["data"]["name"] == "add_tag" and tool_call["data"]["result"] == "Tagged 'streamed'."
    assert types.index("message.tool_call") < types.index("message.delta")
    transient = ("message.delta", "message.tool_call")
    assert all(i is None for t, i, _ in events if t in transient)
    assert all(i is not None for t, i, _ in events if t not in transient)

    refused = await api.post(
        f"/v1/threads/{thread['id']}/messages",
        params={"stream": "true"},
        headers={"Idempotency-Key": "k1"},
        json={"content": "x"},
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "Idempotency-Key"
