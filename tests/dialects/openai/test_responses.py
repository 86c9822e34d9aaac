"""The Responses API through the real ``openai`` SDK against a server process: a response is a run of the thread's
agent, started by the input stored as the end user's message, exactly as a POSTed message starts one. PROMPT
agents answer through the OpenAI-compatible stand-in, their HTTP tool calls the shop stand-in; FLOW agents answer
at once. Every answer (and every streamed event) is checked against OpenAI's published document."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.dialects.openai.conftest import Workspace, unique
from tests.dialects.openai.spec import assert_valid
from tests.fakes.openai_server import ErrorReply, OpenAIStandIn, Reply, ScriptedAnswers, ToolCallReply
from tests.fakes.shop import Shop
from threadline.dialects.openai import ids


def thread_of(conversation_id: str) -> str:
    uid = ids.thread_of(conversation_id)
    assert uid is not None
    return str(uid)


def run_of(response_id: str) -> str:
    uid = ids.run_of(response_id)
    assert uid is not None
    return str(uid)


def unparsed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: unparsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [unparsed(v) for v in value]
    return value


def test_the_openai_quick_start_talks_to_the_workspaces_agent(workspace: Workspace) -> None:
    """The README's first example, with only base_url and the key changed: the model name is any model's, and
    instructions are ignored (the agent's version holds its own)."""
    agent = workspace.flow_agent()
    client = workspace.sdk()

    response = client.responses.create(
        model="gpt-6.2-sol",
        instructions="You are a coding assistant that talks like a pirate.",
        input="How do I check if a Python object is an instance of a class?",
    )

    assert response.output_text == "You said: How do I check if a Python object is an instance of a class?"
    assert response.status == "completed" and response.object == "response"
    assert response.model == f"agent:{agent['id']}" and response.instructions is None
    assert response.conversation is not None
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    # The input and the reply are the new conversation's messages; the response is the run that answered.
    thread = thread_of(response.conversation.id)
    stored = workspace.v1.get(f"/v1/threads/{thread}/messages").json()["data"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "How do I check if a Python object is an instance of a class?"),
        ("assistant", response.output_text),
    ]
    assert message.id == "msg_" + stored[1]["id"].replace("-", "")  # msg_ and the message's UUID
    run = workspace.v1.get(f"/v1/runs/{run_of(response.id)}").json()
    assert run["status"] == "completed" and run["thread_id"] == thread
    assert run["trigger_message_id"] == stored[0]["id"]


def test_a_conversation_continues_and_reads_back_by_its_response_ids(workspace: Workspace) -> None:
    agent = workspace.flow_agent("echo")
    workspace.flow_agent("other")
    client = workspace.sdk()
    conversation = client.conversations.create(metadata={"threadline_agent_id": agent["id"]})

    first = client.responses.create(model="agent:echo", conversation=conversation.id, input="one")
    second = client.responses.create(
        model="agent:" + agent["id"], conversation={"id": conversation.id}, input=[{"role": "user", "content": "two"}]
    )
    third = client.responses.create(model="agent:echo", previous_response_id=second.id, input="three")

    assert [r.output_text for r in (first, second, third)] == ["You said: one", "You said: two", "You said: three"]
    assert {r.conversation.id for r in (first, second, third) if r.conversation} == {conversation.id}
    items = client.conversations.items.list(conversation.id, order="asc").data
    texts = [(i.role, i.content[0].text) for i in items if i.type == "message"]
    assert texts == [
        ("user", "one"),
        ("assistant", "You said: one"),
        ("user", "two"),
        ("assistant", "You said: two"),
        ("user", "three"),
        ("assistant", "You said: three"),
    ]
    # A response's output items are the conversation's items, under the same ids.
    assert [o.id for o in second.output] == [items[3].id]

    again = client.responses.retrieve(second.id)
    assert again.to_dict() == second.to_dict()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_" + "0" * 32)
    with pytest.raises(openai.BadRequestError) as mismatch:
        client.responses.create(model="agent:other", conversation=conversation.id, input="four")
    assert mismatch.value.code == "model_mismatch" and mismatch.value.param == "model"


def test_a_prompt_agent_streams_its_answer_as_responses_events(
    workspace: Workspace, answers: ScriptedAnswers, llm: OpenAIStandIn
) -> None:
    workspace.prompt_agent(system_prompt="You answer for Acme Bikes.")
    said = unique("When do you open?")
    answers.add(said, Reply(text="We open at nine on weekdays and at ten on Saturdays.", chunks=6, usage=(90, 14)))
    client = workspace.sdk()

    events = list(client.responses.create(model="gpt-4o-mini", input=said, stream=True))

    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"} and len(kinds[4:-4]) >= 2  # streamed in pieces
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for event in events:
        assert_valid("ResponseStreamEvent", event.to_dict())
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "We open at nine on weekdays and at ten on Saturdays."
    completed = events[-1].response
    assert completed.status == "completed" and completed.output_text == deltas
    assert completed.usage is not None
    assert (completed.usage.input_tokens, completed.usage.output_tokens, completed.usage.total_tokens) == (90, 14, 104)
    item_id = events[2].item.id
    assert {getattr(e, "item_id", item_id) for e in events[3:-1]} == {item_id}
    assert completed.output[0].id == item_id
    # Read back, the response is the same, and its item is the conversation's.
    stored = client.responses.retrieve(completed.id)
    assert stored.to_dict() == completed.to_dict()
    assert completed.conversation is not None
    listed = client.conversations.items.retrieve(item_id, conversation_id=completed.conversation.id)
    assert listed.content[0].text == deltas
    assert llm.completion_requests[-1].messages[-1] == {"role": "user", "content": said}


def test_a_tool_calling_agents_calls_appear_as_items_in_the_stream_and_the_conversation(
    workspace: Workspace, answers: ScriptedAnswers, shop: Shop
) -> None:
    workspace.prompt_agent(tools=[shop.tool()])
    said = unique("Where is my order A1?")
    answers.add(
        said,
        Reply(text="Let me check.", tool_calls=[ToolCallReply("order_status", '{"order": "A1"}')], usage=(100, 9)),
        Reply(text="Order A1 has shipped; it arrives Friday.", chunks=4, usage=(150, 11)),
    )
    client = workspace.sdk()

    with client.responses.stream(model="gpt-4o-mini", input=said) as stream:  # the SDK's own stream helper
        events = list(stream)
        final = stream.get_final_response()

    kinds = [(e.type, getattr(getattr(e, "item", None), "type", None)) for e in events]
    added = [k for k in kinds if k[0] == "response.output_item.added"]
    assert added == [
        ("response.output_item.added", "message"),
        ("response.output_item.added", "function_call"),
        ("response.output_item.added", "function_call_output"),
        ("response.output_item.added", "message"),
    ]
    commentary, call, output, answer = final.output
    assert (commentary.type, commentary.phase, commentary.content[0].text) == ("message", "commentary", "Let me check.")
    assert (call.type, call.name, call.arguments) == ("function_call", "order_status", '{"order":"A1"}')
    assert (output.type, output.call_id) == ("function_call_output", call.call_id)
    assert '"status":"shipped"' in output.output
    assert (answer.phase, final.output_text) == (
        "final_answer",
        "Let me check.Order A1 has shipped; it arrives Friday.",
    )
    assert answer.content[0].text == "Order A1 has shipped; it arrives Friday."
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (250, 20)
    assert [c["body"] for c in shop.calls if c["body"] == {"order": "A1"}]
    # The conversation holds the same items under the same ids, after the end user's message.
    assert final.conversation is not None
    items = client.conversations.items.list(final.conversation.id, order="asc").data
    assert [i.type for i in items] == ["message", "message", "function_call", "function_call_output", "message"]
    assert [i.id for i in items[1:]] == [o.id for o in final.output]
    assert events[-1].type == "response.completed"
    # (the helper adds its parsed forms to texts and calls: structured outputs, which this request asks for none of)
    assert client.responses.retrieve(final.id).to_dict() == unparsed(events[-1].response.to_dict())
    # And as /v1 stores it: one assistant reply recording the call, with its iterations.
    thread = thread_of(final.conversation.id)
    reply = workspace.v1.get(f"/v1/threads/{thread}/messages", params={"role": "assistant"}).json()["data"][0]
    assert reply["content"] == answer.content[0].text
    assert reply["tool_calls"][0]["name"] == "order_status" and reply["tool_calls"][0]["id"] == call.call_id
    # Deleting the answer deletes the stored reply, with the call items it holds.
    client.conversations.items.delete(call.id, conversation_id=final.conversation.id)
    assert [i.type for i in client.conversations.items.list(final.conversation.id).data] == ["message"]


def test_the_same_without_streaming(workspace: Workspace, answers: ScriptedAnswers, shop: Shop) -> None:
    workspace.prompt_agent(tools=[shop.tool()])
    said = unique("Status of A2?")
    answers.add(
        said,
        Reply(tool_calls=[ToolCallReply("order_status", '{"order": "A2"}')], usage=(10, 2)),
        Reply(text="A2 has shipped.", usage=(20, 4)),
    )
    response = workspace.sdk().responses.create(model="gpt-4o-mini", input=said)
    assert [o.type for o in response.output] == ["function_call", "function_call_output", "message"]
    assert response.output_text == "A2 has shipped."
    assert response.usage is not None and response.usage.total_tokens == 36


async def test_the_async_client_streams_typed_events(workspace: Workspace, answers: ScriptedAnswers) -> None:
    workspace.prompt_agent()
    said = unique("Hello async")
    answers.add(said, Reply(text="Hello from the agent.", chunks=3))
    client = workspace.async_sdk()
    stream = await client.responses.create(model="gpt-4o-mini", input=said, stream=True)
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello from the agent."
    response = await client.responses.retrieve(events[-1].response.id)
    assert response.output_text == "Hello from the agent."
    plain = await client.responses.create(model="gpt-4o-mini", input="second", conversation=response.conversation.id)  # type: ignore[union-attr]
    assert plain.output_text == "echo: second"


def test_a_flow_agents_replies_stream_whole_when_the_run_ends(workspace: Workspace) -> None:
    workspace.flow_agent()
    events = list(workspace.sdk().responses.create(model="gpt-4o", input="hi there", stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[4].delta == "You said: hi there" and events[-1].response.output_text == "You said: hi there"
    for event in events:
        assert_valid("ResponseStreamEvent", event.to_dict())


def test_a_failed_run_is_a_failed_response_holding_the_versions_failure_reply(
    workspace: Workspace, answers: ScriptedAnswers
) -> None:
    workspace.prompt_agent(failure_reply="Sorry, I cannot answer right now.")
    said, streamed = unique("Fail please"), unique("Fail while streaming")
    answers.add(said, ErrorReply.model_not_found("gpt-4o-mini"))
    answers.add(streamed, ErrorReply.model_not_found("gpt-4o-mini"))
    client = workspace.sdk()

    response = client.responses.create(model="gpt-4o-mini", input=said)
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "server_error" and response.error.message.startswith("provider_model_not_found: ")
    assert response.output_text == "Sorry, I cannot answer right now."

    events = list(client.responses.create(model="gpt-4o-mini", input=streamed, stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    assert events[-1].response.output_text == "Sorry, I cannot answer right now."
    assert client.responses.retrieve(events[-1].response.id).to_dict() == events[-1].response.to_dict()


def test_a_response_without_a_conversation_opens_one_with_its_metadata(workspace: Workspace) -> None:
    workspace.flow_agent("echo")
    workspace.flow_agent("other")
    client = workspace.sdk()
    response = client.responses.create(
        model="agent:echo", input="hello", metadata={"threadline_end_user_name": "Lin", "source": "kiosk"}
    )
    assert response.conversation is not None
    conversation = client.conversations.retrieve(response.conversation.id)
    assert conversation.metadata == {"threadline_end_user_name": "Lin", "source": "kiosk"}
    thread = workspace.v1.get(f"/v1/threads/{thread_of(conversation.id)}").json()
    assert workspace.v1.get(f"/v1/end_users/{thread['end_user_id']}").json()["display_name"] == "Lin"
    with pytest.raises(openai.BadRequestError) as two:
        client.responses.create(model="agent:echo", input="x", metadata={"threadline_agent_id": "other"})
    assert two.value.param == "metadata.threadline_agent_id"
    default = client.responses.create(model="gpt-4o", input="x")  # any model name: the oldest agent answers
    assert default.model == f"agent:{workspace.agents['echo']['id']}" and default.output_text == "You said: x"


def test_a_conversation_a_human_took_over_refuses_with_a_typed_error_and_stores_nothing(
    workspace: Workspace,
) -> None:
    workspace.flow_agent()
    client = workspace.sdk()
    conversation = client.conversations.create()
    thread = thread_of(conversation.id)
    assert workspace.v1.patch(f"/v1/threads/{thread}", json={"active": False}).status_code == 200

    with pytest.raises(openai.ConflictError) as refused:
        client.responses.create(model="gpt-4o", conversation=conversation.id, input="anyone there?")
    assert refused.value.code == "conversation_with_human" and refused.value.param == "conversation"
    assert refused.value.response.headers["x-should-retry"] == "false"  # the SDK does not retry it
    assert workspace.v1.get(f"/v1/threads/{thread}").json()["message_count"] == 0
    # The end user can still reach the person through the conversation's items.
    client.conversations.items.create(conversation.id, items=[{"role": "user", "content": "anyone there?"}])
    assert workspace.v1.get(f"/v1/threads/{thread}/runs").json()["data"] == []

    assert workspace.v1.patch(f"/v1/threads/{thread}", json={"active": True, "blocked": True}).status_code == 200
    with pytest.raises(openai.ConflictError) as blocked:
        client.responses.create(model="gpt-4o", conversation=conversation.id, input="hello?")
    assert blocked.value.code == "conversation_blocked"


def test_background_answers_at_once_and_the_response_reads_back_done(
    workspace: Workspace, answers: ScriptedAnswers
) -> None:
    workspace.prompt_agent()
    said = unique("Take your time")
    answers.add(said, Reply(text="Done thinking.", delay_s=0.5))
    client = workspace.sdk()
    started = client.responses.create(model="gpt-4o-mini", input=said, background=True)
    assert started.status in ("queued", "in_progress") and started.output == []
    deadline = time.monotonic() + 15
    response = client.responses.retrieve(started.id)
    while response.status != "completed":
        assert time.monotonic() < deadline, response.status
        time.sleep(0.1)
        response = client.responses.retrieve(started.id)
    assert response.output_text == "Done thinking."


@pytest.mark.parametrize(
    ("arguments", "param", "code"),
    [
        (
            {"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {}}]},
            "tools",
            "unsupported_parameter",
        ),
        ({"input": "hi", "store": False}, "store", "unsupported_parameter"),
        ({"input": ""}, "input", None),
        ({"input": [{"role": "system", "content": "only a system message"}]}, "input", None),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type", "unsupported_item_type"),
        ({"input": "hi", "conversation": "conv_nope"}, "conversation", None),
        ({"input": "hi", "conversation": "conv_x", "previous_response_id": "resp_x"}, "previous_response_id", None),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "input[0].content[0].image_url",
            "unsupported_content",
        ),
    ],
)
def test_requests_it_cannot_honour_are_bad_requests_naming_the_parameter(
    workspace: Workspace, arguments: dict[str, Any], param: str, code: str | None
) -> None:
    workspace.flow_agent()
    client = workspace.sdk()
    error: type[openai.APIStatusError] = openai.NotFoundError if param == "conversation" else openai.BadRequestError
    with pytest.raises(error) as refused:
        client.responses.create(model="gpt-4o", **arguments)
    assert refused.value.param == param
    if code is not None:
        assert refused.value.code == code
    assert workspace.v1.get("/v1/threads").json()["data"] == []  # nothing was stored


def test_another_workspaces_responses_are_not_found(workspace: Workspace, other: Workspace) -> None:
    workspace.flow_agent()
    other.flow_agent()
    response = workspace.sdk().responses.create(model="gpt-4o", input="mine")
    with pytest.raises(openai.NotFoundError):
        other.sdk().responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        other.sdk().responses.create(model="gpt-4o", input="x", previous_response_id=response.id)
    with pytest.raises(openai.NotFoundError):
        assert response.conversation is not None
        other.sdk().responses.create(model="gpt-4o", input="x", conversation=response.conversation.id)
