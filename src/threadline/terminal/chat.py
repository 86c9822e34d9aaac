"""``threadline chat``: talk to an agent from the terminal, as one of its end users, over a running server's
``/v1`` API.

Each line typed is POSTed as the end user's message with ``stream=true``: the answer is the thread's events
until the run ends, so the reply shows token by token (``message.delta``), each tool call as it completes
(``message.tool_call``), then the stored reply. When the server's wait cap ends that stream first, the chat
follows the thread's event stream from the last event it saw. Slash commands hand the thread to a human and
back (``PATCH /v1/threads/{id}`` ``active``), and show its messages.

On a terminal (standard input a TTY) it is interactive, in colour when standard output is a terminal too.
Otherwise it reads one message a line and prints only the replies, plain, on standard output (notes such as
tool calls or a handoff go to standard error), and exits non-zero when a message got no answer."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from rich.console import Console
from rich.text import Text

from threadline.terminal.client import Api, ChatError, Events, NotFound
from threadline.terminal.output import console

KEY_ENV = "THREADLINE_API_KEY"
DEFAULT_TIMEOUT_S = 120.0
HISTORY_DEFAULT = 50
RESUME_CONTEXT = 10  # messages shown when an interactive chat continues a thread
PROMPT_MARK = "\u203a"  # the single right-pointing angle quotation mark, after "you" at the prompt
RUN_ENDS = frozenset({"run.completed", "run.failed", "run.cancelled"})
HELP = (
    "/history [N]  the thread's last N messages (default 50)\n"
    "/handoff      hand the thread to a human: the agent stops answering\n"
    "/back         give the thread back to the agent\n"
    "/quit         leave (Ctrl-D does too)\n"
    "An empty line shows what others wrote meanwhile; start a message with // to send one that begins with /."
)


@dataclass(frozen=True, slots=True)
class ChatOptions:
    url: str
    agent: str | None = None
    thread: str | None = None
    end_user: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


def run_chat(
    options: ChatOptions,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    """Chat until /quit or the end of the input; the exit status (0: every message of a piped input got an
    answer). A :class:`ChatError` for what stops it before (no key, server down, unknown agent...)."""
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    interactive = stdin.isatty()
    key = _key(environ if environ is not None else dict(os.environ), interactive)
    api = Api(options.url, key)
    try:
        view: View = Screen(console(stdout), stdin) if interactive else Plain(stdout, stderr)
        conversation = Conversation.open(api, options, view)
        if interactive:
            assert isinstance(view, Screen)
            return _interactive(conversation, view)
        return _piped(conversation, stdin)
    except BrokenPipeError:
        # Whoever read the output left (`... | head -n1`): stop quietly, and let nothing write to the pipe again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 0
    finally:
        api.close()


def _key(environ: dict[str, str], interactive: bool) -> str:
    key = environ.get(KEY_ENV, "").strip()
    if key:
        return key
    if not interactive:
        raise ChatError(f"no API key: set {KEY_ENV} (`threadline keys create --workspace NAME --scopes read,write`)")
    try:
        key = getpass.getpass(f"API key ({KEY_ENV} is not set; input hidden): ").strip()
    except (EOFError, KeyboardInterrupt):
        key = ""
    if not key:
        raise ChatError(f"no API key: set {KEY_ENV} or type one")
    return key


# ------------------------------------------------------------------------------------------------ loops


def _interactive(conversation: Conversation, screen: Screen) -> int:
    screen.banner(conversation)
    while True:
        try:
            try:
                conversation.catch_up()
            except ChatError as exc:  # the server went away, say: tell, and let the person decide
                screen.warn(str(exc))
            line = screen.ask()
        except (EOFError, KeyboardInterrupt):
            screen.out.print()
            return 0
        if not line.strip():
            continue
        try:
            if _is_command(line):
                if conversation.command(line) is QUIT:
                    return 0
            else:
                conversation.exchange(_unescape(line))
        except KeyboardInterrupt:
            screen.end_line()
            screen.warn("stopped waiting; an answer still coming is stored in the thread (/history shows it)")
        except ChatError as exc:
            screen.end_line()
            screen.warn(str(exc))


def _piped(conversation: Conversation, stdin: IO[str]) -> int:
    unanswered = 0
    for raw in stdin:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if _is_command(line):
            if conversation.command(line) is QUIT:
                break
        elif not conversation.exchange(_unescape(line)):
            unanswered += 1
    return 1 if unanswered else 0


def _is_command(line: str) -> bool:
    return line.startswith("/") and not line.startswith("//")


def _unescape(line: str) -> str:
    return line[1:] if line.startswith("//") else line


QUIT = object()


# ------------------------------------------------------------------------------------------------ the thread


@dataclass(slots=True)
class Turn:
    """What one message's stream showed so far."""

    message_id: str | None = None  # the end user's message (the stream's first message.created)
    run_id: str | None = None  # the run answering it
    ended: dict[str, Any] | None = None  # that run's final event
    seq: int = 0  # the last stored event seen, to follow the thread's stream from
    answers: int = 0  # messages of the agent or an operator
    notes: int = 0  # system messages (a failed run leaves one)
    calls: set[str] = field(default_factory=set)  # the tool calls shown (by id)


class Conversation:
    """The thread this chat writes to, what the chat knows of it, and what it can do with it."""

    def __init__(
        self,
        api: Api,
        view: View,
        thread: dict[str, Any],
        agent: dict[str, Any],
        end_user: dict[str, Any] | None,
        timeout_s: float,
    ) -> None:
        self.api = api
        self.view = view
        self.thread = thread
        self.agent = agent
        self.end_user = end_user
        self.timeout_s = timeout_s
        self.seen: str | None = None  # the newest message shown (or known when the chat began)
        view.agent_name = agent.get("name") or "agent"

    @property
    def id(self) -> str:
        return str(self.thread["id"])

    @classmethod
    def open(cls, api: Api, options: ChatOptions, view: View) -> Conversation:
        """The thread named by ``options``, or a new one between the agent and an end user."""
        if options.thread:
            if options.end_user:
                raise ChatError("--end-user is for a new thread; a thread given with --thread keeps its end user")
            try:
                thread = api.call("GET", f"/v1/threads/{options.thread}")
            except NotFound:
                raise ChatError(f"no thread '{options.thread}' in this key's workspace") from None
            agent = _agent_by_id(api, thread["agent_id"])
            if options.agent:
                named = find_agent(api, options.agent)
                if named["id"] != thread["agent_id"]:
                    raise ChatError(
                        f"thread {thread['id']} belongs to agent '{agent.get('name')}' ({thread['agent_id']}), "
                        f"not to '{options.agent}'"
                    )
            end_user = None
            with contextlib.suppress(ChatError):  # only a name in the banner: an erased end user has none
                end_user = api.call("GET", f"/v1/end_users/{thread['end_user_id']}")
            return cls._ready(api, view, thread, agent, end_user, options, new=False)
        if not options.agent:
            raise ChatError("name the agent to talk to with --agent NAME (or continue a thread with --thread ID)")
        agent = find_agent(api, options.agent)
        end_user = _end_user(api, options.end_user)
        thread = api.call(
            "POST",
            "/v1/threads",
            json={"agent_id": agent["id"], "end_user_id": end_user["id"], "metadata": {"source": "threadline chat"}},
        )
        return cls._ready(api, view, thread, agent, end_user, options, new=True)

    @classmethod
    def _ready(
        cls,
        api: Api,
        view: View,
        thread: dict[str, Any],
        agent: dict[str, Any],
        end_user: dict[str, Any] | None,
        options: ChatOptions,
        *,
        new: bool,
    ) -> Conversation:
        conversation = cls(api, view, thread, agent, end_user, options.timeout_s)
        if new:
            view.started(conversation)
        else:
            newest = api.call("GET", f"/v1/threads/{conversation.id}/messages", params={"order": "desc", "limit": 1})
            conversation.seen = newest["data"][0]["id"] if newest["data"] else None
        return conversation

    # -------------------------------------------------------------------------------------- one exchange

    def exchange(self, text: str) -> bool:
        """Send ``text`` as the end user and show what follows until the agent's run ends; whether someone
        answered (the agent, or an operator meanwhile)."""
        turn = Turn()
        deadline = time.monotonic() + self.timeout_s
        self._watch(self.api.send(self.id, text, until=deadline), turn, deadline)
        if turn.run_id is not None and turn.ended is None and time.monotonic() < deadline:
            # The server's wait cap ended the message's stream first: go on with the thread's own stream.
            self._watch(self.api.follow(self.id, turn.seq, until=deadline), turn, deadline)
        self.view.end_line()
        if turn.message_id is None:
            self.view.warn(f"the server did not confirm the message within {self.timeout_s:g} s")
            return False
        if turn.run_id is None:
            self.view.warn(self._why_no_run())
            return turn.answers > 0
        if turn.ended is None:
            self.view.warn(
                f"no answer from the agent within {self.timeout_s:g} s (is a worker running? `threadline serve` runs "
                "workers, `threadline api` needs `threadline worker`); it is stored when it comes (/history)"
            )
            return turn.answers > 0
        self._explain_end(turn)
        return turn.answers > 0 and turn.ended["type"] == "run.completed"

    def _watch(self, events: Events, turn: Turn, deadline: float) -> None:
        with contextlib.closing(events):  # leaving early ends the request
            for event in events:
                if event is not None:
                    self._on(event, turn)
                if turn.ended is not None or time.monotonic() >= deadline:
                    return

    def _on(self, event: dict[str, Any], turn: Turn) -> None:
        kind = str(event.get("type") or "")
        data = event.get("data") or {}
        if isinstance(event.get("seq"), int):
            turn.seq = max(turn.seq, event["seq"])
        if kind == "message.created":
            self.seen = data.get("id") or self.seen
            if turn.message_id is None and data.get("role") == "user":
                turn.message_id = data.get("id")  # the message just sent: the stream begins with it
                return
            if data.get("role") == "assistant":
                turn.answers += 1
                # Tool calls whose live event this chat missed (it came between two streams): from the reply.
                for call in data.get("tool_calls") or []:
                    if isinstance(call, dict) and call.get("id") not in turn.calls:
                        self._tool_call(call, turn)
            elif data.get("role") == "system":
                turn.notes += 1
            self.view.message(data)
        elif kind == "message.delta":
            self.view.delta(data)
        elif kind == "message.tool_call":
            self._tool_call(data, turn)
        elif kind.startswith("run."):
            if turn.run_id is None:
                turn.run_id = data.get("id")
            if kind in RUN_ENDS and data.get("id") == turn.run_id:
                turn.ended = {"type": kind, "run": data}
        elif kind in ("thread.updated", "thread.handoff_started", "thread.handoff_ended"):
            self._on_thread_event(kind, data)

    def _tool_call(self, call: dict[str, Any], turn: Turn) -> None:
        turn.calls.add(str(call.get("id")))
        self.view.tool_call(call)

    def _on_thread_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "thread.updated":
            for name in ("active", "blocked"):
                if name in data:
                    self.thread[name] = data[name]
            return
        self.view.end_line()
        if kind == "thread.handoff_started":
            self.thread["active"] = False
            if data.get("by") == "agent":
                reason = f": {data['reason']}" if data.get("reason") else ""
                self.view.note(f"the agent handed this conversation to a human{reason}")
            else:
                self.view.note("a human has taken this conversation over")
        else:
            self.thread["active"] = True
            self.view.note("the agent answers this conversation again")

    def _explain_end(self, turn: Turn) -> None:
        assert turn.ended is not None
        kind, run = turn.ended["type"], turn.ended["run"]
        error = run.get("error") or {}
        if kind == "run.failed" and not turn.notes:
            self.view.warn(f"the agent could not answer: {error.get('message') or error.get('code') or 'failed'}")
        elif kind == "run.cancelled":
            if error.get("code") == "human_handoff":
                self.view.warn("a human took this conversation over before the agent answered")
            else:
                detail = f": {error['message']}" if error.get("message") else ""
                self.view.warn(f"the agent's answer was cancelled{detail}")
        elif kind == "run.completed" and not turn.answers:
            self.view.warn("the agent finished without a reply")

    def _why_no_run(self) -> str:
        self.thread = self.api.call("GET", f"/v1/threads/{self.id}")
        if not self.thread.get("active"):
            return "a human has this thread: the agent will not answer (/back gives it back to the agent)"
        if self.thread.get("blocked"):
            return "this thread is blocked: the agent will not answer"
        return "the agent did not start an answer to this message (does its current version answer messages?)"

    # -------------------------------------------------------------------------------------- commands

    def command(self, line: str) -> object:
        name, _, argument = line[1:].strip().partition(" ")
        name = name.lower()
        if name in ("quit", "exit", "q"):
            return QUIT
        if name in ("help", "?"):
            self.view.note(HELP)
        elif name == "history":
            self.history(argument.strip())
        elif name == "handoff":
            self.set_active(False)
        elif name == "back":
            self.set_active(True)
        else:
            self.view.warn(f"unknown command /{name}: /help lists them (// sends a message that begins with /)")
        return None

    def history(self, argument: str) -> None:
        if argument and not (argument.isdigit() and int(argument) > 0):
            self.view.warn("/history takes a number of messages, e.g. /history 20")
            return
        count = int(argument) if argument else HISTORY_DEFAULT
        newest_first: list[dict[str, Any]] = []
        for message in self.api.pages(f"/v1/threads/{self.id}/messages", order="desc"):
            newest_first.append(message)
            if len(newest_first) >= count:
                break
        if newest_first:
            self.seen = newest_first[0]["id"]
        self.view.history(list(reversed(newest_first)), self.thread.get("message_count"))

    def set_active(self, active: bool) -> None:
        current = self.api.call("GET", f"/v1/threads/{self.id}")
        if bool(current.get("active")) == active:
            self.thread = current
            self.view.note("the agent has this thread already" if active else "a human has this thread already")
            return
        self.thread = self.api.call("PATCH", f"/v1/threads/{self.id}", json={"active": active})
        if active:
            self.view.note("handed back: the agent answers again")
        else:
            self.view.note("handed to a human: the agent will not answer until /back")

    def catch_up(self) -> None:
        """Show the messages others added since the last one shown (an operator's answer, say)."""
        if self.seen is None:
            return
        for message in self.api.pages(f"/v1/threads/{self.id}/messages", after=self.seen):
            self.seen = message["id"]
            self.view.message(message)


def find_agent(api: Api, name: str) -> dict[str, Any]:
    """The workspace's agent with id or name ``name`` (an exact name first, then one in any case)."""
    try:
        agents = list(api.pages("/v1/agents"))
    except NotFound:
        raise ChatError(f"{api.base_url} has no /v1/agents: is it a threadline server?") from None
    for matches in (
        [a for a in agents if a["id"] == name],
        [a for a in agents if a["name"] == name],
        [a for a in agents if a["name"].casefold() == name.casefold()],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(a["id"] for a in matches)
            raise ChatError(f"{len(matches)} agents are named '{name}': name one by its id ({ids})")
    names = sorted({a["name"] for a in agents})
    known = f"; its agents: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}" if names else "; it has none"
    raise ChatError(f"no agent named '{name}' in this key's workspace{known}")


def _agent_by_id(api: Api, agent_id: str) -> dict[str, Any]:
    try:
        agent: dict[str, Any] = api.call("GET", f"/v1/agents/{agent_id}")
    except NotFound:
        raise ChatError(f"the thread's agent {agent_id} no longer exists") from None
    return agent


def _end_user(api: Api, name: str | None) -> dict[str, Any]:
    """The end user named by id, or a new one with ``name`` (default: the login name) as display name."""
    if name and _is_uuid(name):
        try:
            found: dict[str, Any] = api.call("GET", f"/v1/end_users/{name}")
        except NotFound:
            raise ChatError(f"no end user with id '{name}' in this key's workspace") from None
        return found
    created: dict[str, Any] = api.call(
        "POST",
        "/v1/end_users",
        json={"display_name": name or _login_name(), "metadata": {"source": "threadline chat"}},
    )
    return created


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER variable and no password entry (a container)
        return "terminal"


# ------------------------------------------------------------------------------------------------ views


class View(Protocol):
    """Where a chat shows what happens in the thread."""

    agent_name: str

    def started(self, conversation: Conversation) -> None: ...
    def delta(self, data: dict[str, Any]) -> None: ...
    def tool_call(self, data: dict[str, Any]) -> None: ...
    def message(self, message: dict[str, Any]) -> None: ...
    def history(self, messages: list[dict[str, Any]], total: int | None) -> None: ...
    def note(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...
    def end_line(self) -> None: ...


def message_text(message: dict[str, Any]) -> str:
    """A message as one text: its content (the text of typed blocks), and what it carries besides."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(str(b.get("text") or "") for b in content if isinstance(b, dict)).strip()
    text = str(content or "")
    kind = message.get("type") or "text"
    if message.get("media_url"):
        text = f"{text} [{kind}: {message['media_url']}]".strip()
    elif kind != "text" and not text:
        text = f"[{kind}]"
    return text


def _compact(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tool_line(call: dict[str, Any], *, arrow: str = "->", width: int = 100) -> str:
    """One tool call in a line: ``order_status({"order": "42"}) -> {"status": "shipped"} (12 ms)``."""
    budget = max(20, (width - len(str(call.get("name"))) - 20) // 2)
    head = f"{call.get('name')}({_compact(call.get('arguments') or {}, budget)})"
    if call.get("error") is not None:
        tail = f"failed: {_compact(call['error'], budget)}"
    else:
        tail = _compact(call.get("result"), budget)
    took = f" ({call['duration_ms']:g} ms)" if isinstance(call.get("duration_ms"), int | float) else ""
    return f"{head} {arrow} {tail}{took}"


class Screen:
    """The interactive view: a prompt, the reply as it streams, tool calls in a line each, colours on a
    terminal (Rich)."""

    def __init__(self, out: Console, stdin: IO[str]) -> None:
        self.out = out
        self.stdin = stdin
        self.agent_name = "agent"
        self.unicode = (out.encoding or "").lower().startswith("utf")
        self.open = False  # a streamed reply's line is not finished
        self.streamed = ""  # what the current model call streamed so far
        self.iteration: Any = None
        self.read: Callable[[], str] = self._reader()

    def _reader(self) -> Callable[[], str]:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  # line editing and history for input()
        return input

    def _label(self, who: str, style: str) -> Text:
        return Text(f"{who} {PROMPT_MARK if self.unicode else '>'} ", style=style)

    def ask(self) -> str:
        self.out.print(self._label("you", "bold green"), end="")
        return self.read()

    def banner(self, conversation: Conversation) -> None:
        thread = conversation.thread
        who = (conversation.end_user or {}).get("display_name") or "the thread's end user"
        self.out.print(
            Text.assemble(
                ("Chat with ", "dim"),
                (self.agent_name, "bold cyan"),
                (f" as {who} · thread {thread['id']}", "dim"),
            )
        )
        self.out.print(Text("/help lists the commands; /quit (or Ctrl-D) leaves.", style="dim"))
        if conversation.seen is not None:
            conversation.history(str(RESUME_CONTEXT))
        if not thread.get("active"):
            self.warn("a human has this thread: the agent will not answer (/back gives it back to the agent)")
        elif thread.get("blocked"):
            self.warn("this thread is blocked: the agent will not answer")

    def started(self, conversation: Conversation) -> None:
        return  # the banner says it

    def delta(self, data: dict[str, Any]) -> None:
        iteration = data.get("iteration")
        if not self.open or iteration != self.iteration:
            self.end_line()
            self.out.print(self._label(self.agent_name, "bold cyan"), end="")
            self.open, self.streamed, self.iteration = True, "", iteration
        text = str(data.get("delta") or "")
        self.streamed += text
        self.out.print(Text(text), end="", soft_wrap=True)

    def tool_call(self, data: dict[str, Any]) -> None:
        self.end_line()
        self.streamed, self.iteration = "", None
        self._tool(data)

    def _tool(self, data: dict[str, Any]) -> None:
        mark = "⚙" if self.unicode else "*"
        line = tool_line(data, arrow="→" if self.unicode else "->", width=self.out.width)
        style = "red" if data.get("error") is not None else "dim"
        self.out.print(Text(f"  {mark} {line}", style=style), soft_wrap=True)

    def message(self, message: dict[str, Any]) -> None:
        role, by = message.get("role"), message.get("sent_by")
        if role in ("hidden", "tool"):
            return
        text = message_text(message)
        if role == "assistant" and by == "agent" and self.open and text.startswith(self.streamed):
            self.out.print(Text(text[len(self.streamed) :]), soft_wrap=True)  # the rest of the streamed reply
            self.open, self.streamed = False, ""
            return
        self.end_line()
        self._show(message, text)

    def _show(self, message: dict[str, Any], text: str) -> None:
        role, by = message.get("role"), message.get("sent_by")
        if role == "system":
            self.out.print(Text(f"system: {text}", style="italic dim"), soft_wrap=True)
            return
        if role == "hidden":
            self.out.print(Text(f"(hidden) {text}", style="dim"), soft_wrap=True)
            return
        if role == "user":
            label = self._label("you", "bold green")
        elif by == "operator":
            label = self._label("operator", "bold magenta")
        else:
            label = self._label(self.agent_name, "bold cyan")
        self.out.print(Text.assemble(label, text), soft_wrap=True)

    def history(self, messages: list[dict[str, Any]], total: int | None) -> None:
        self.end_line()
        shown = [m for m in messages if m.get("role") != "tool"]
        if total is not None and total > len(messages):
            self.out.print(Text(f"… the last {len(messages)} of {total} messages", style="dim"))
        if not shown:
            self.out.print(Text("(no messages yet)", style="dim"))
        for message in shown:
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    self._tool(call)
            self._show(message, message_text(message))

    def note(self, text: str) -> None:
        self.end_line()
        self.out.print(Text(text, style="dim"), soft_wrap=True)

    def warn(self, text: str) -> None:
        self.end_line()
        self.out.print(Text(text, style="yellow"), soft_wrap=True)

    def end_line(self) -> None:
        if self.open:
            self.out.print()
            self.open, self.streamed, self.iteration = False, "", None


class Plain:
    """The view of a pipe: the answers alone on standard output, plain; notes on standard error."""

    def __init__(self, stdout: IO[str], stderr: IO[str]) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.agent_name = "agent"

    def _out(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def _err(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def started(self, conversation: Conversation) -> None:
        self._err(f"thread {conversation.id} (continue it with --thread {conversation.id})")

    def delta(self, data: dict[str, Any]) -> None:
        return  # a pipe gets each reply whole, exactly as stored

    def tool_call(self, data: dict[str, Any]) -> None:
        self._err(f"tool: {tool_line(data, width=200)}")

    def message(self, message: dict[str, Any]) -> None:
        role = message.get("role")
        if role == "assistant":
            self._out(message_text(message))
        elif role == "system":
            self._err(f"system: {message_text(message)}")

    def history(self, messages: list[dict[str, Any]], total: int | None) -> None:
        for message in messages:
            role, by = message.get("role"), message.get("sent_by")
            if role == "tool":
                continue
            who = {"user": "you", "system": "system", "hidden": "hidden"}.get(str(role))
            who = who or ("operator" if by == "operator" else self.agent_name)
            self._out(f"{who}: {message_text(message)}")

    def note(self, text: str) -> None:
        self._err(text)

    def warn(self, text: str) -> None:
        self._err(text)

    def end_line(self) -> None:
        return
