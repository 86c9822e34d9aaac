"""``threadline chat`` against a real server process (with its worker), whose PROMPT agent answers through the
OpenAI-compatible stand-in on 127.0.0.1 and whose tool calls the shop stand-in: at a terminal (a pseudo-terminal,
typed into as a person would), in a pipe, and when it cannot work (wrong key, server down, unknown agent)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.cli.pty_term import Terminal
from tests.conftest import Tenant, add_key, make_tenant
from tests.fakes.openai_server import OpenAIStandIn, Reply, ScriptedAnswers, ToolCallReply
from tests.fakes.shop import Shop
from tests.livesrv import agent_server_env, free_port, live_server, server_log
from threadline.models.enums import Scope
from threadline.terminal.chat import PROMPT_MARK as M
from threadline.terminal.chat import ChatOptions, Conversation, Plain, run_chat
from threadline.terminal.client import Api, ChatError, sse_messages

# A FLOW agent that answers every message at once, with no model: "You said: <the message>".
FLOW_ECHO = {
    "start": "echo",
    "nodes": {
        "echo": {"type": "send", "text": "You said: {{input.text}}", "next": "listen"},
        "listen": {"type": "ask", "next": "echo"},
    },
}


# The server's longest wait for an answer (what ends a POSTed message's stream): short, so that a slow answer
# outlasts it.
WAIT_CAP_S = 10


@pytest.fixture(scope="module")
def answers() -> ScriptedAnswers:
    return ScriptedAnswers()


@pytest.fixture(scope="module")
def llm(answers: ScriptedAnswers) -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-stand-in") as server:
        server.default = answers
        yield server


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    s = Shop()
    yield s
    s.close()


@pytest.fixture(scope="module")
def live(database_url: str, engine: Any, settings: Any, llm: OpenAIStandIn) -> Iterator[str]:
    with live_server(
        database_url, **agent_server_env(settings, llm.base_url), THREADLINE_MESSAGE_WAIT_MAX_S=str(WAIT_CAP_S)
    ) as base:
        yield base


@dataclass
class Workspace:
    tenant: Tenant
    base: str
    v1: httpx.Client

    def agent(self, name: str, version: dict[str, Any]) -> dict[str, Any]:
        r = self.v1.post("/v1/agents", json={"name": name, "type": "TEXT", "version": version})
        assert r.status_code == 201, r.text
        agent: dict[str, Any] = r.json()
        return agent

    def shop_agent(self, shop: Shop, name: str = "Shop assistant") -> dict[str, Any]:
        return self.agent(
            name,
            {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "max_tokens": 200, "tools": [shop.tool()]},
        )

    def prompt_agent(self, name: str) -> dict[str, Any]:
        return self.agent(name, {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "max_tokens": 200})

    def echo_agent(self, name: str = "echo") -> dict[str, Any]:
        return self.agent(name, {"mode": "FLOW", "provider": "flow", "flow": FLOW_ECHO})

    def thread(self, agent: dict[str, Any], **fields: Any) -> dict[str, Any]:
        end_user = self.v1.post("/v1/end_users", json={"display_name": "Ada"}).json()
        r = self.v1.post("/v1/threads", json={"agent_id": agent["id"], "end_user_id": end_user["id"], **fields})
        assert r.status_code == 201, r.text
        thread: dict[str, Any] = r.json()
        return thread

    def messages(self, thread_id: str) -> list[dict[str, Any]]:
        r = self.v1.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data


@pytest.fixture
async def workspace(live: str, sessionmaker: Any) -> AsyncIterator[Workspace]:
    tenant = await make_tenant(sessionmaker)
    with httpx.Client(base_url=live, headers=tenant.headers, timeout=30) as v1:
        yield Workspace(tenant, live, v1)


def unique(text: str) -> str:
    """A message no other test sends (the stand-in answers by the message)."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def chat_env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_LOG_LEVEL"] = "warning"
    if key is not None:
        env["THREADLINE_API_KEY"] = key
    return env


def chat_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "threadline.cli", "chat", *args]


def run_piped(key: str | None, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chat_argv(*args), input=stdin, capture_output=True, text=True, env=chat_env(key), timeout=90, check=False
    )


# ------------------------------------------------------------------------------------------------ at a terminal


def test_at_a_terminal_the_reply_streams_tools_show_and_the_thread_goes_to_a_human_and_back(
    workspace: Workspace, shop: Shop, answers: ScriptedAnswers
) -> None:
    workspace.shop_agent(shop)
    question = unique("Where is my order 42?")
    reply = "Good news! Order 42 has shipped and it arrives on Friday."
    answers.add(
        question,
        Reply(tool_calls=[ToolCallReply("order_status", '{"order": "42"}')]),
        Reply(text=reply, chunks=6, chunk_delay_s=0.3),
    )
    key = workspace.tenant.key
    term = Terminal(chat_argv("--agent", "shop assistant", "--url", workspace.base), chat_env(key))
    try:
        banner = term.expect(r"Chat with Shop assistant as \S+ · thread (\S+)")
        thread_id = banner.group(1)
        term.expect(rf"you {M} $")
        assert "\x1b[" in term.raw(), "no colours at a terminal"

        # A message: the tool call in a line, then the reply as it is written.
        mark = term.mark()
        term.type(question)
        term.expect(re.escape(reply) + rf"\nyou {M} $", since=mark, timeout=30)
        after = term.text()[mark:]
        tool_at = after.index("order_status")
        assert 'order_status({"order": "42"}) → {"order": "42", "status": "shipped", "eta": "Friday"}' in after
        assert after.index(f"Shop assistant {M} Good news!") > tool_at
        assert after.count(reply) == 1, after  # streamed, then not printed again when stored
        # Streamed: its first words were on the screen well before its last.
        assert term.appeared_at("on Friday.") - term.appeared_at("Good news") > 0.6
        assert [c["body"] for c in shop.calls if c["body"].get("order") == "42"]

        # /history: the exchange as stored, the tool call with it.
        mark = term.mark()
        term.type("/history")
        term.expect(re.escape(f"Shop assistant {M} {reply}"), since=mark + len("/history"))
        shown = term.text()[mark:]
        assert f"you {M} {question}" in shown
        assert shown.index("⚙ order_status") < shown.index(f"Shop assistant {M} {reply}")

        # /handoff: the thread is a human's; the next message gets no run, and the chat says so.
        mark = term.mark()
        term.type("/handoff")
        term.expect("handed to a human: the agent will not answer until /back", since=mark)
        assert workspace.v1.get(f"/v1/threads/{thread_id}").json()["active"] is False
        ignored = unique("Hello, anyone there?")
        mark = term.mark()
        term.type(ignored)
        term.expect(r"a human has this thread: the agent will not answer \(/back", since=mark)
        assert [m["content"] for m in workspace.messages(thread_id)][-1] == ignored  # stored all the same
        runs = workspace.v1.get(f"/v1/threads/{thread_id}/runs").json()["data"]
        assert len(runs) == 1 and ignored not in answers.asked

        # An operator answers in the console meanwhile: an empty line shows it.
        user = workspace.v1.post("/v1/users", json={"email": f"{uuid.uuid4().hex[:8]}@example.com"}).json()
        r = workspace.v1.post(
            f"/v1/threads/{thread_id}/messages",
            json={"role": "assistant", "user_id": user["id"], "content": "A human here: how can I help?"},
        )
        assert r.status_code == 201, r.text
        mark = term.mark()
        term.type("")
        term.expect(rf"operator {M} A human here: how can I help\?", since=mark)

        # /back: the agent answers again.
        mark = term.mark()
        term.type("/back")
        term.expect("handed back: the agent answers again", since=mark)
        assert workspace.v1.get(f"/v1/threads/{thread_id}").json()["active"] is True
        thanks = unique("thanks")
        mark = term.mark()
        term.type(thanks)
        term.expect(re.escape(f"Shop assistant {M} echo: {thanks}"), since=mark)

        # Ctrl-C while waiting stops waiting; the answer, stored later, shows on an empty line.
        slow = unique("take a while")
        answers.add(slow, Reply(text="Here I am, late.", delay_s=3))
        mark = term.mark()
        term.type(slow)
        deadline = time.monotonic() + 20
        while slow not in answers.asked and time.monotonic() < deadline:
            time.sleep(0.05)  # the agent is at work
        os.write(term.master, b"\x03")
        term.expect(rf"stopped waiting; an answer still coming is stored in the thread.*\nyou {M} $", since=mark)
        time.sleep(4)
        mark = term.mark()
        term.type("")
        term.expect(re.escape(f"Shop assistant {M} Here I am, late."), since=mark)

        term.type("/quit")
        assert term.wait() == 0
        assert key not in term.raw()
    except BaseException:
        print(term.text()[-5000:], server_log(workspace.base)[-3000:])
        raise
    finally:
        term.close()


def test_at_a_terminal_the_key_is_asked_for_unseen_and_a_continued_thread_shows_its_last_messages(
    workspace: Workspace,
) -> None:
    agent = workspace.echo_agent("Greeter")
    thread = workspace.thread(agent, active=False)
    r = workspace.v1.post(f"/v1/threads/{thread['id']}/messages", json={"content": "first words"})
    assert r.status_code == 201, r.text
    term = Terminal(chat_argv("--thread", thread["id"], "--url", workspace.base), chat_env(None))
    try:
        # No THREADLINE_API_KEY: it asks for the key, and the key typed is not echoed.
        term.expect(r"API key \(THREADLINE_API_KEY is not set; input hidden\): ")
        term.type(workspace.tenant.key)
        term.expect(rf"Chat with Greeter as Ada · thread {thread['id']}")
        term.expect(f"you {M} first words")
        term.expect(r"a human has this thread: the agent will not answer")
        term.expect(rf"you {M} $")
        mark = term.mark()
        term.type("/nonsense")
        term.expect(rf"unknown command /nonsense: /help lists them.*\nyou {M} $", since=mark)
        os.write(term.master, b"\x04")  # Ctrl-D leaves
        assert term.wait() == 0
        assert workspace.tenant.key not in term.raw()
    finally:
        term.close()


# ------------------------------------------------------------------------------------------------ in a pipe


def test_in_a_pipe_each_line_is_one_exchange_and_only_the_replies_are_printed(workspace: Workspace) -> None:
    workspace.echo_agent("echo")
    result = run_piped(workspace.tenant.key, "hi\n\nhow are you?\n", "--agent", "echo", "--url", workspace.base)
    assert result.returncode == 0, result
    assert result.stdout == "You said: hi\nYou said: how are you?\n"
    assert "\x1b" not in result.stdout + result.stderr
    assert f"you {M}" not in result.stdout
    thread_id = result.stderr.split()[1]
    assert [m["content"] for m in workspace.messages(thread_id)] == [
        "hi",
        "You said: hi",
        "how are you?",
        "You said: how are you?",
    ]
    assert workspace.tenant.key not in result.stdout + result.stderr

    # The same thread again: /history prints the conversation, plain.
    again = run_piped(workspace.tenant.key, "/history\n", "--thread", thread_id, "--url", workspace.base)
    assert again.returncode == 0, again
    assert again.stdout.splitlines() == [
        "you: hi",
        "echo: You said: hi",
        "you: how are you?",
        "echo: You said: how are you?",
    ]


def test_in_a_pipe_a_prompt_agent_prints_its_stored_reply_and_tool_calls_go_to_stderr(
    workspace: Workspace, shop: Shop, answers: ScriptedAnswers
) -> None:
    workspace.shop_agent(shop, "Orders")
    question = unique("status of order 7?")
    answers.add(
        question,
        Reply(text="Let me look.", tool_calls=[ToolCallReply("order_status", '{"order": "7"}')]),
        Reply(text="Order 7 has shipped.", chunks=4),
    )
    result = run_piped(workspace.tenant.key, question + "\n", "--agent", "Orders", "--url", workspace.base)
    assert result.returncode == 0, result
    assert result.stdout == "Order 7 has shipped.\n"  # the words streamed before the tool call are not the reply
    assert 'tool: order_status({"order": "7"}) -> {"order": "7", "status": "shipped", "eta": "Friday"}' in result.stderr


def test_in_a_pipe_a_thread_with_a_human_gets_no_answer_and_the_chat_says_so(workspace: Workspace) -> None:
    thread = workspace.thread(workspace.echo_agent(), active=False)
    result = run_piped(workspace.tenant.key, "anyone?\n", "--thread", thread["id"], "--url", workspace.base)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert "a human has this thread: the agent will not answer" in result.stderr
    assert [m["content"] for m in workspace.messages(thread["id"])] == ["anyone?"]

    # /back in the same input: the agent has it again and answers the next line.
    result = run_piped(workspace.tenant.key, "/back\nnow?\n", "--thread", thread["id"], "--url", workspace.base)
    assert result.returncode == 0, result
    assert result.stdout == "You said: now?\n"
    assert "handed back" in result.stderr


def _chat_in_process(workspace: Workspace, stdin: str, **options: Any) -> tuple[int, str, str]:
    """(status, stdout, stderr) of a piped chat run in this process."""
    stdout, stderr = io.StringIO(), io.StringIO()
    status = run_chat(
        ChatOptions(**{"url": workspace.base, **options}),
        stdin=io.StringIO(stdin),
        stdout=stdout,
        stderr=stderr,
        environ={"THREADLINE_API_KEY": workspace.tenant.key},
    )
    return status, stdout.getvalue(), stderr.getvalue()


def test_an_answer_slower_than_the_servers_wait_cap_still_arrives(
    workspace: Workspace, answers: ScriptedAnswers
) -> None:
    workspace.prompt_agent("Slow")
    question = unique("take your time")
    answers.add(question, Reply(text="Sorry for the wait.", delay_s=WAIT_CAP_S + 2))
    started = time.monotonic()
    status, out, err = _chat_in_process(workspace, question + "\n", agent="Slow")
    assert (status, out) == (0, "Sorry for the wait.\n"), err
    assert time.monotonic() - started > WAIT_CAP_S + 1  # past the message's own stream: the thread's stream had it


def test_an_answer_slower_than_the_timeout_is_reported_and_the_status_is_one(
    workspace: Workspace, answers: ScriptedAnswers
) -> None:
    workspace.prompt_agent("Slower")
    question = unique("no hurry")
    answers.add(question, Reply(text="Finally.", delay_s=WAIT_CAP_S + 4))
    started = time.monotonic()
    status, out, err = _chat_in_process(workspace, question + "\n", agent="Slower", timeout_s=2)
    assert (status, out) == (1, "")
    assert "no answer from the agent within 2 s" in err
    assert time.monotonic() - started < WAIT_CAP_S  # the timeout ended the wait, not the server's cap


# ------------------------------------------------------------------------------------------------ failures


def _clean_failure(result: subprocess.CompletedProcess[str], message: str, key: str | None = None) -> None:
    assert result.returncode != 0, result
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    if key:
        assert key not in result.stdout + result.stderr


def test_a_wrong_key_is_a_clear_error_that_never_shows_the_key(workspace: Workspace) -> None:
    workspace.echo_agent()
    wrong = "tl_" + uuid.uuid4().hex * 2
    _clean_failure(
        run_piped(wrong, "hi\n", "--agent", "echo", "--url", workspace.base), "the server refused the API key", wrong
    )
    _clean_failure(run_piped(None, "hi\n", "--agent", "echo", "--url", workspace.base), "no API key: set")


async def test_a_key_that_may_only_read_is_told_so(workspace: Workspace, sessionmaker: Any) -> None:
    workspace.echo_agent()
    reader = await add_key(sessionmaker, workspace.tenant, (Scope.READ,))
    result = run_piped(reader, "hi\n", "--agent", "echo", "--url", workspace.base)
    _clean_failure(result, "the API key may not do this (403)", reader)


def test_a_server_that_is_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_piped("tl_whatever", "hi\n", "--agent", "echo", "--url", url)
    _clean_failure(result, f"cannot reach the threadline server at {url}", "tl_whatever")
    assert time.monotonic() - started < 30


def test_unknown_agents_threads_and_conflicting_options_are_clear_errors(workspace: Workspace) -> None:
    """In this process (the command's own handling of a ChatError is tested above): each is one sentence."""
    agent = workspace.echo_agent("echo")
    workspace.echo_agent("twin")
    workspace.echo_agent("twin")
    workspace.echo_agent("other")
    thread = workspace.thread(agent)
    missing = str(uuid.uuid4())

    def fails(**options: Any) -> str:
        environ = {"THREADLINE_API_KEY": workspace.tenant.key}
        stdin, stdout = io.StringIO("hi\n"), io.StringIO()
        with pytest.raises(ChatError) as failure:
            run_chat(ChatOptions(**{"url": workspace.base, **options}), stdin=stdin, stdout=stdout, environ=environ)
        assert stdout.getvalue() == ""
        return str(failure.value)

    assert fails(agent="nobody") == "no agent named 'nobody' in this key's workspace; its agents: echo, other, twin"
    assert fails(agent="twin").startswith("2 agents are named 'twin': name one by its id (")
    assert fails().startswith("name the agent to talk to with --agent NAME")
    assert fails(thread=missing) == f"no thread '{missing}' in this key's workspace"
    assert fails(thread=thread["id"], agent="other").startswith(f"thread {thread['id']} belongs to agent 'echo'")
    assert fails(thread=thread["id"], end_user="Bob").startswith("--end-user is for a new thread")
    assert fails(agent="echo", end_user=missing) == f"no end user with id '{missing}' in this key's workspace"
    assert fails(url="localhost:8000").startswith("--url must start with http:// or https://")


# ------------------------------------------------------------------------------------------------ the stream's format


def test_server_sent_events_are_read_as_the_format_says() -> None:
    lines = ["retry: 1000", "", ": keep-alive", "id: 4", "event: a", "data: {", 'data: "x": 1}', "", "data: cut"]
    assert list(sse_messages(lines)) == [None, ("a", '{\n"x": 1}')]


def test_a_tool_call_whose_live_event_was_missed_is_shown_from_the_stored_reply() -> None:
    """Transient events are not replayed: one that came while the chat went from the message's stream to the
    thread's is taken from the reply's ``tool_calls`` (a scripted stream: what a real server sends is above)."""
    call = {"id": "call_9", "name": "order_status", "arguments": {"order": "9"}, "result": "lost", "duration_ms": 3}
    events = [
        {"seq": 1, "type": "message.created", "data": {"id": "m1", "role": "user", "content": "hi"}},
        {"seq": 2, "type": "run.queued", "data": {"id": "r1"}},
        {
            "seq": 3,
            "type": "message.created",
            "data": {
                "id": "m2",
                "role": "assistant",
                "sent_by": "agent",
                "content": "Order 9 is lost.",
                "tool_calls": [call],
            },
        },
        {"seq": 4, "type": "run.completed", "data": {"id": "r1"}},
    ]
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)

    def server(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/threads/t1/messages" and request.url.params["stream"] == "true"
        return httpx.Response(201, text=body, headers={"content-type": "text/event-stream"})

    api = Api("http://threadline.test", "tl_key", transport=httpx.MockTransport(server))
    stdout, stderr = io.StringIO(), io.StringIO()
    conversation = Conversation(api, Plain(stdout, stderr), {"id": "t1", "active": True}, {"name": "a"}, None, 5)
    assert conversation.exchange("hi") is True
    assert stdout.getvalue() == "Order 9 is lost.\n"
    assert stderr.getvalue() == 'tool: order_status({"order": "9"}) -> lost (3 ms)\n'
