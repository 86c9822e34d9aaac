"""FLOW agents answering through runs: the demo flow over several turns, state kept per thread."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import create_agent, create_end_user, create_thread
from threadline.workspaces.bootstrap import DEMO_FLOW


async def _say(api: httpx.AsyncClient, thread_id: str, **message: Any) -> list[dict[str, Any]]:
    r = await api.post(f"/v1/threads/{thread_id}/messages", params={"wait": 10}, json=message)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["run"]["status"] == "completed", body["run"]
    return list(body["replies"])


async def test_the_demo_flow_greets_with_buttons_captures_a_name_branches_and_hands_off(
    api: httpx.AsyncClient, worker: Any
) -> None:
    agent = await create_agent(api, version={"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW})
    user = await create_end_user(api, display_name="Ada")
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=user["id"])

    (greeting,) = await _say(api, thread["id"], content="hello")
    assert greeting["type"] == "button" and "demo agent" in greeting["content"]
    r = await api.get(f"/v1/threads/{thread['id']}/messages/{greeting['id']}", params={"output_mode": "blocks"})
    blocks = r.json()["content"]
    buttons = next(b for b in blocks if b["type"] == "buttons")["buttons"]
    assert [b["payload"] for b in buttons] == ["sales", "support"]

    # A button press (as a client with buttons sends it) answers the question; the flow asks for the name.
    (ask,) = await _say(
        api,
        thread["id"],
        type="button",
        content="Talk to sales",
        blocks=[{"type": "button_reply", "payload": "sales", "title": "Talk to sales"}],
    )
    assert ask["content"] == "Happy to help. What's your name?"
    (bye,) = await _say(api, thread["id"], content="Ada Lovelace")
    assert bye["content"].startswith("Thanks, Ada Lovelace! I'm passing you to our sales team")
    after = (await api.get(f"/v1/threads/{thread['id']}")).json()
    assert after["active"] is False and [t["name"] for t in after["tags"]] == ["sales"]
    # The human has it now: the next message starts no run.
    r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "hello?"})
    assert r.json()["run"] is None


async def test_typed_answers_work_on_channels_without_buttons_and_state_survives_between_runs(
    api: httpx.AsyncClient, worker: Any
) -> None:
    agent = await create_agent(api, version={"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW})
    thread = await create_thread(api, agent_id=agent["id"])
    await _say(api, thread["id"], content="hi")
    (ask,) = await _say(api, thread["id"], content="get SUPPORT")  # the typed title, any case
    assert ask["content"] == "Happy to help. What's your name?"
    (need,) = await _say(api, thread["id"], content="Linus")
    assert need["content"].startswith("Thanks, Linus.")
    replies = await _say(api, thread["id"], content="I forgot my password")
    assert [m["content"][:24] for m in replies] == ["To reset your password, ", "Anything else, Linus? Ju"]
    assert (await api.get(f"/v1/threads/{thread['id']}")).json()["active"] is True
