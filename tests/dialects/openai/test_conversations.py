"""The Conversations API through the real ``openai`` SDK (sync and async) against a server process: a conversation is a
thread, its items are the thread's messages. Every answer is checked against OpenAI's published document."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from tests.dialects.openai.conftest import Workspace
from threadline.dialects.openai import ids


def thread_id(conversation_id: str) -> str:
    uid = ids.thread_of(conversation_id)
    assert uid is not None
    return str(uid)


def test_a_conversation_is_a_thread_of_the_agent_and_end_user_its_metadata_names(workspace: Workspace) -> None:
    workspace.flow_agent("other")  # the workspace's oldest agent: its default, which the metadata overrides
    agent = workspace.flow_agent("echo")
    end_user = workspace.v1.post("/v1/end_users", json={"display_name": "Grace"}).json()
    client = workspace.sdk()

    conversation = client.conversations.create(
        metadata={"threadline_agent_id": "echo", "threadline_end_user_id": end_user["id"], "topic": "bikes"},
        items=[{"type": "message", "role": "user", "content": "Hello there"}],
    )

    assert conversation.object == "conversation" and conversation.id.startswith("conv_")
    assert conversation.metadata == {
        "threadline_agent_id": "echo",
        "threadline_end_user_id": end_user["id"],
        "topic": "bikes",
    }
    thread = workspace.v1.get(f"/v1/threads/{thread_id(conversation.id)}").json()
    assert thread["agent_id"] == agent["id"] and thread["end_user_id"] == end_user["id"]
    assert thread["metadata"]["topic"] == "bikes" and thread["message_count"] == 1
    assert abs(conversation.created_at - int(httpx_time(thread["created_at"]))) <= 1
    # The initial item is the end user's message, and nothing answered it: items are stored, not sent to the agent.
    (message,) = workspace.v1.get(f"/v1/threads/{thread['id']}/messages").json()["data"]
    assert (message["role"], message["content"]) == ("user", "Hello there")
    assert workspace.v1.get(f"/v1/threads/{thread['id']}/runs").json()["data"] == []

    # Read, update (metadata is replaced), delete.
    assert client.conversations.retrieve(conversation.id).metadata["topic"] == "bikes"
    updated = client.conversations.update(conversation.id, metadata={"threadline_agent_id": "echo", "topic": "brakes"})
    assert updated.metadata == {"threadline_agent_id": "echo", "topic": "brakes"}
    assert workspace.v1.get(f"/v1/threads/{thread['id']}").json()["metadata"] == updated.metadata
    deleted = client.conversations.delete(conversation.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (conversation.id, True, "conversation.deleted")
    assert workspace.v1.get(f"/v1/threads/{thread['id']}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)
    assert workspace.transport is not None and "ConversationResource" in workspace.transport.checked


def httpx_time(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_without_metadata_a_conversation_takes_the_oldest_agent_and_a_new_end_user(workspace: Workspace) -> None:
    agent = workspace.flow_agent()
    client = workspace.sdk()
    first = client.conversations.create(metadata={"threadline_end_user_name": "Ada"})
    second = client.conversations.create()
    one = workspace.v1.get(f"/v1/threads/{thread_id(first.id)}").json()
    two = workspace.v1.get(f"/v1/threads/{thread_id(second.id)}").json()
    assert one["agent_id"] == two["agent_id"] == agent["id"]
    assert one["end_user_id"] != two["end_user_id"]  # each conversation stands for a person of its own
    assert workspace.v1.get(f"/v1/end_users/{one['end_user_id']}").json()["display_name"] == "Ada"
    assert second.metadata == {}

    second = workspace.flow_agent("second")
    third = client.conversations.create()
    assert workspace.v1.get(f"/v1/threads/{thread_id(third.id)}").json()["agent_id"] == agent["id"]
    fourth = client.conversations.create(metadata={"threadline_agent_id": "second"})
    assert workspace.v1.get(f"/v1/threads/{thread_id(fourth.id)}").json()["agent_id"] == second["id"]
    workspace.flow_agent("second")
    with pytest.raises(openai.BadRequestError) as several:
        client.conversations.create(metadata={"threadline_agent_id": "second"})
    assert several.value.code == "agent_ambiguous" and several.value.param == "metadata.threadline_agent_id"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.conversations.create(metadata={"threadline_agent_id": str(uuid.uuid4())})
    assert unknown.value.code == "agent_not_found"
    with pytest.raises(openai.BadRequestError) as moved:
        client.conversations.update(first.id, metadata={"threadline_agent_id": "second"})
    assert moved.value.param == "metadata.threadline_agent_id"


def test_items_are_the_threads_messages_in_order_with_every_role(workspace: Workspace) -> None:
    workspace.flow_agent()
    client = workspace.sdk()
    conversation = client.conversations.create()
    added = client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "developer", "content": "Be brief."},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Shop hours 9-5."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "This one"},
                    {"type": "input_image", "image_url": "https://cdn.example.com/bike.png", "detail": "auto"},
                ],
            },
            {"type": "function_call", "call_id": "call_a", "name": "lookup", "arguments": '{"q": "bike"}'},
            {"type": "function_call_output", "call_id": "call_a", "output": '{"found": 1}'},
            {"type": "function_call_output", "call_id": "call_elsewhere", "output": "done"},
        ],
    )
    assert [i.type for i in added.data] == [
        "message",
        "message",
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    listed = client.conversations.items.list(conversation.id, order="asc")
    assert [i.id for i in listed.data] == [i.id for i in added.data]
    developer, system, user, assistant, image, call, output, loose = listed.data
    assert (developer.role, developer.content[0].text) == ("developer", "Be brief.")
    assert (system.role, system.content[0].text) == ("system", "Shop hours 9-5.")
    assert (user.role, user.content[0].type, user.content[0].text) == ("user", "input_text", "Hi")
    assert (assistant.role, assistant.content[0].type, assistant.content[0].text) == (
        "assistant",
        "output_text",
        "Hello!",
    )
    assert [c.type for c in image.content] == ["input_text", "input_image"]
    assert image.content[1].image_url == "https://cdn.example.com/bike.png"
    assert (call.call_id, call.name, call.arguments) == ("call_a", "lookup", '{"q": "bike"}')
    assert (output.call_id, output.output) == ("call_a", '{"found": 1}')
    assert (loose.call_id, loose.output) == ("call_elsewhere", "done")
    assert all(i.status == "completed" for i in listed.data)

    # The same rows through /v1: roles, the image, the call recorded on the assistant's message with its result.
    messages = workspace.v1.get(f"/v1/threads/{thread_id(conversation.id)}/messages").json()["data"]
    assert [m["role"] for m in messages] == ["system", "system", "user", "assistant", "user", "assistant", "tool"]
    assert messages[0]["metadata"] == {"openai_role": "developer"}
    assert (messages[4]["type"], messages[4]["media_url"]) == ("image", "https://cdn.example.com/bike.png")
    assert messages[5]["tool_calls"] == [
        {"id": "call_a", "name": "lookup", "arguments": '{"q": "bike"}', "result": '{"found": 1}'}
    ]
    assert (messages[6]["content"], messages[6]["metadata"]) == ("done", {"call_id": "call_elsewhere"})

    # Newest first by default; one item read back; one deleted (its message with it).
    assert [i.id for i in client.conversations.items.list(conversation.id).data] == [i.id for i in added.data][::-1]
    again = client.conversations.items.retrieve(user.id, conversation_id=conversation.id)
    assert again.to_dict() == user.to_dict()
    after_delete = client.conversations.items.delete(user.id, conversation_id=conversation.id)
    assert after_delete.id == conversation.id and after_delete.object == "conversation"
    assert user.id not in [i.id for i in client.conversations.items.list(conversation.id, order="asc").data]
    assert workspace.v1.get(f"/v1/threads/{thread_id(conversation.id)}").json()["message_count"] == 6
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(user.id, conversation_id=conversation.id)


def test_auto_pagination_walks_every_item_over_several_pages_both_ways(workspace: Workspace) -> None:
    workspace.flow_agent()
    client = workspace.sdk()
    conversation = client.conversations.create()
    sent = [f"message {n}" for n in range(23)]
    for start in range(0, len(sent), 10):
        client.conversations.items.create(
            conversation.id,
            items=[{"type": "message", "role": "user", "content": text} for text in sent[start : start + 10]],
        )
    pages = client.conversations.items.list(conversation.id, limit=4, order="asc")
    assert pages.has_more and len(pages.data) == 4
    forward = [item.content[0].text for item in pages]  # the SDK fetches page after page (after=last_id)
    assert forward == sent
    backward = [item.content[0].text for item in client.conversations.items.list(conversation.id, limit=5)]
    assert backward == sent[::-1]
    page_count = sum(1 for _ in client.conversations.items.list(conversation.id, limit=4, order="asc").iter_pages())
    assert page_count == 6


async def test_the_async_client_does_the_same(workspace: Workspace) -> None:
    workspace.flow_agent()
    client = workspace.async_sdk()
    conversation = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": f"hello {n}"} for n in range(7)]
    )
    seen = [
        item.content[0].text async for item in client.conversations.items.list(conversation.id, limit=3, order="asc")
    ]
    assert seen == [f"hello {n}" for n in range(7)]
    updated = await client.conversations.update(conversation.id, metadata={"k": "v"})
    assert updated.metadata == {"k": "v"}
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.retrieve("msg_" + "0" * 32, conversation_id=conversation.id)
    assert (await client.conversations.delete(conversation.id)).deleted is True
    assert workspace.async_transport is not None and "ConversationItemList" in workspace.async_transport.checked


def test_another_workspaces_conversation_is_not_found(workspace: Workspace, other: Workspace) -> None:
    workspace.flow_agent()
    conversation = workspace.sdk().conversations.create(items=[{"role": "user", "content": "mine"}])
    item = workspace.sdk().conversations.items.list(conversation.id).data[0]
    stranger = other.sdk()
    with pytest.raises(openai.NotFoundError):
        stranger.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        stranger.conversations.items.list(conversation.id)
    with pytest.raises(openai.NotFoundError):
        stranger.conversations.items.retrieve(item.id, conversation_id=conversation.id)
    with pytest.raises(openai.NotFoundError):
        stranger.conversations.delete(conversation.id)
    assert workspace.sdk().conversations.retrieve(conversation.id).id == conversation.id


def test_a_read_only_key_reads_and_is_refused_writes(workspace: Workspace) -> None:
    workspace.flow_agent()
    conversation = workspace.sdk().conversations.create(items=[{"role": "user", "content": "hi"}])
    key = workspace.v1.post("/v1/api_keys", json={"scopes": ["read"]}).json()["key"]
    reader = workspace.sdk(key)
    assert reader.conversations.retrieve(conversation.id).id == conversation.id
    assert len(reader.conversations.items.list(conversation.id).data) == 1
    for write in (
        lambda: reader.conversations.create(),
        lambda: reader.conversations.update(conversation.id, metadata={}),
        lambda: reader.conversations.delete(conversation.id),
        lambda: reader.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}]),
        lambda: reader.responses.create(model="gpt-4o", input="hi", conversation=conversation.id),
    ):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            write()
        assert refused.value.status_code == 403
    assert len(workspace.sdk().conversations.items.list(conversation.id).data) == 1


def test_a_wrong_or_missing_key_is_an_authentication_error(workspace: Workspace) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        workspace.sdk("tl_not_a_key").conversations.create()
    assert wrong.value.code == "invalid_api_key" and wrong.value.status_code == 401
    r = httpx.post(f"{workspace.base}/openai/v1/conversations", json={})
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "message": "missing API key: send 'Authorization: Bearer KEY' with a threadline API key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
