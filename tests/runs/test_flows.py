"""FLOW agents: the flow document (parse, errors with paths, YAML) and the engine, turn by turn, with the
state stored as JSON between turns; the default HTTP caller against a real server on 127.0.0.1; and
the agent-version API refusing a flow that cannot run."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.engines.flows import (
    End,
    Flow,
    FlowError,
    FlowState,
    FlowStatus,
    FlowTurn,
    Handoff,
    HttpRequest,
    HttpResult,
    HttpxCaller,
    Inbound,
    advance,
    end_user_context,
    flow_warnings,
    parse_flow,
    parse_flow_document,
)
from threadline.models.enums import MessageType
from threadline.workspaces.bootstrap import DEMO_FLOW

CONTEXT = end_user_context(display_name="Ada Lovelace", address="+15550001", channel="sms", info={"plan": "pro"})


def _problems(source: Any) -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(source)
    return [str(p) for p in caught.value.problems]


def _flow(nodes: dict[str, Any], start: str | None = None, **top: Any) -> Flow:
    return parse_flow({"start": start or next(iter(nodes)), "nodes": nodes, **top})


class FakeHttp:
    """Stands in for the HTTP caller: records the requests, answers from a list."""

    def __init__(self, *answers: HttpResult | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResult:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _no_http() -> FakeHttp:
    return FakeHttp()


class Conversation:
    """Drives a flow turn by turn, storing the state as JSON text between turns (as a database column would)."""

    def __init__(self, flow: Flow, http: FakeHttp | None = None) -> None:
        self.flow = flow
        self.http = http or _no_http()
        self.stored: str | None = None

    async def say(self, *messages: str | Inbound) -> FlowTurn:
        inbound = [m if isinstance(m, Inbound) else Inbound(text=m) for m in messages]
        state = FlowState.from_json(json.loads(self.stored)) if self.stored is not None else None
        turn = await advance(self.flow, state, inbound, context=CONTEXT, http=self.http)
        assert turn.ok, turn.error
        assert turn.state is not None
        self.stored = json.dumps(turn.state.to_json())
        return turn

    @property
    def state(self) -> FlowState:
        assert self.stored is not None
        return FlowState.from_json(json.loads(self.stored))


def _texts(turn: FlowTurn) -> list[str]:
    return [o.content for o in turn.outputs]


def _press(payload: str, title: str) -> Inbound:
    """A button pressed over the API: a message of type button with a button_reply block."""
    return Inbound.from_message(
        type="button", content="", blocks=[{"type": "button_reply", "payload": payload, "title": title}]
    )


# ------------------------------------------------------------------------------------------------ schema


def test_a_reference_to_a_missing_node_names_its_path() -> None:
    problems = _problems(
        {
            "start": "ask_name",
            "nodes": {
                "ask_name": {"type": "ask", "text": "Name?", "var": "name", "next": "foo"},
                "route": {"type": "branch", "cases": [{"keyword": "hi", "next": "bar"}], "default": "Ask_Name"},
            },
        }
    )
    assert problems == [
        "nodes.ask_name.next: no node 'foo'",
        "nodes.route.cases.0.next: no node 'bar'",
        "nodes.route.default: no node 'Ask_Name' (did you mean 'ask_name'?)",
    ]
    assert _problems({"start": "nowhere", "nodes": {"a": {"type": "end"}}}) == ["start: no node 'nowhere'"]


def test_unknown_node_types_fields_and_missing_fields_name_their_paths() -> None:
    assert _problems({"start": "a", "nodes": {"a": {"type": "say", "text": "hi"}}}) == [
        "nodes.a.type: unknown node type 'say'; expected one of: send, ask, input, branch, http, set, handoff, end"
    ]
    assert _problems({"start": "a", "nodes": {"a": {"text": "hi"}}})[0].startswith("nodes.a.type: is required")
    assert _problems({"start": "a", "nodes": {"a": {"type": "send", "txt": "hi", "next": "a"}}}) == [
        "nodes.a.txt: is not a known field here"
    ]
    assert _problems({"start": "a", "nodes": {"a": {"type": "send", "next": "a"}}}) == [
        "nodes.a: give exactly one of text, template or media (got none)"
    ]
    assert _problems({"start": "a", "nodes": {"a": {"type": "ask", "text": "?"}}}) == ["nodes.a.next: is required"]
    assert _problems({"nodes": {"a": {"type": "end"}}}) == ["start: is required"]
    assert _problems({"start": "a", "nodes": {}})[0].startswith("nodes: ")
    assert _problems({"version": 2, "start": "a", "nodes": {"a": {"type": "end"}}}) == [
        "version: must be 1 (the only flow format so far)"
    ]
    assert _problems({"start": "a b", "nodes": {"a b": {"type": "end"}}})[0].startswith(
        "start: 'a b' is not a valid node id"
    )


def test_bad_regular_expressions_and_cases_name_their_paths() -> None:
    problems = _problems(
        {
            "start": "ask",
            "nodes": {
                "ask": {"type": "ask", "text": "Code?", "validate": {"regex": "[0-9"}, "next": "route"},
                "route": {
                    "type": "branch",
                    "cases": [
                        {"regex": "(unclosed", "next": "ask"},
                        {"keyword": "x", "var": "y", "next": "ask"},
                        {"var": "y", "next": "ask"},
                        {"equals": "z", "payload": "p", "next": "ask"},
                    ],
                    "default": "ask",
                },
            },
        }
    )
    assert problems[0].startswith("nodes.ask.validate.regex: not a valid regular expression: ")
    assert problems[1].startswith("nodes.route.cases.0.regex: not a valid regular expression: ")
    assert problems[2:] == [
        "nodes.route.cases.1: give exactly one of payload, keyword, regex or var (got keyword, var)",
        "nodes.route.cases.2: var needs exactly one of equals, contains or exists (got none)",
        "nodes.route.cases.3: equals goes with var",
    ]


def test_placeholders_variables_and_urls_are_checked() -> None:
    assert _problems({"start": "a", "nodes": {"a": {"type": "end", "message": "Hi {{ first name }}"}}}) == [
        "nodes.a.message: bad placeholder '{{ first name }}': write {{name}}, {{user.display_name}} or "
        "{{name | fallback}}"
    ]
    assert _problems({"start": "a", "nodes": {"a": {"type": "ask", "var": "input", "next": "a"}}}) == [
        "nodes.a.var: 'input' is reserved (the latest input)"
    ]
    http = {"type": "http", "next": "a"}
    assert _problems({"start": "a", "nodes": {"a": {**http, "url": "https://{{host}}/x"}}}) == [
        "nodes.a.url: the host may not contain placeholders"
    ]
    assert _problems({"start": "a", "nodes": {"a": {**http, "url": "ftp://example.com/"}}}) == [
        "nodes.a.url: must start with http:// or https://"
    ]
    body = {"order": [{"note": "{{not valid}}"}]}
    assert _problems({"start": "a", "nodes": {"a": {**http, "method": "post", "url": "https://e.com", "body": body}}})[
        0
    ].startswith("nodes.a.body.order.0.note: bad placeholder")
    assert _problems({"start": "a", "nodes": {"a": {"type": "set", "variables": {"x": "{{}}"}, "next": "a"}}})[
        0
    ].startswith("nodes.a.variables.x: bad placeholder")
    template = {"name": "welcome", "params": ["{{ok}}", "{{bad bad}}"]}
    assert _problems({"start": "a", "nodes": {"a": {"type": "send", "template": template, "next": "a"}}})[0].startswith(
        "nodes.a.template.params.1: bad placeholder"
    )


def test_yaml_text_is_a_flow_too() -> None:
    text = """
version: 1
start: ask_name
nodes:
  ask_name:
    type: input            # the alias of ask
    text: "What's your name?"
    var: name
    validate: {regex: '\\S+', message: Please type your name.}
    next: bye
  bye:
    type: end
    message: Nice to meet you, {{name}}.
  launch:
    type: send
    text: Launch on 2025-01-31     # dates stay text
    next: bye
"""
    document, flow = parse_flow_document(text)
    assert document["nodes"]["ask_name"]["validate"] == {"regex": "\\S+", "message": "Please type your name."}
    assert flow.nodes["launch"].text == "Launch on 2025-01-31"  # type: ignore[union-attr]
    assert json.loads(json.dumps(document)) == document
    assert [str(w) for w in flow_warnings(flow)] == ["nodes.launch: unreachable from start"]
    assert parse_flow(json.dumps(document)) == flow  # JSON text is YAML


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("start: a\nnodes:\n  a: {type: end\n", "is not valid YAML: expected ',' or '}'"),
        ("start: a\nnodes:\n  a: {type: end}\n  a: {type: end}\n", "is not valid YAML: duplicate key 'a' (line 4"),
        ("start: a\nnodes: &n\n  a: {type: end}\nextra: *n\n", "is not valid YAML: aliases (*name) are not allowed"),
        ("- start\n- nodes\n", "must be a JSON object (or YAML text of one) with start and nodes, not a list"),
        ("start: a\nnodes:\n  a: {type: end, message: !!binary aGk=}\n", "nodes.a.message: is a bytes"),
        ("start: a\nnodes:\n  a: {type: end}\n  1: {type: end}\n", "nodes: has a key that is not a string (1)"),
        ("start: a\nnodes:\n  a: {type: end, message: .nan}\n", "nodes.a.message: must be a finite number"),
    ],
)
def test_yaml_errors_say_where(text: str, problem: str) -> None:
    assert _problems(text)[0].startswith(problem)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_kinds = st.sampled_from(["send", "ask", "input", "branch", "http", "set", "handoff", "end", "other"])
_fields = st.sampled_from(
    ["text", "next", "buttons", "var", "validate", "cases", "default", "url", "body", "save", "template", "media"]
)


@settings(max_examples=300, deadline=None)
@given(kind=_kinds, fields=st.dictionaries(_fields, _json | st.sampled_from(["a", "b", "{{x}}", "[", "(?P<x>"])))
def test_any_document_parses_or_is_a_flow_error(kind: str, fields: dict[str, Any]) -> None:
    for document in ({"start": "a", "nodes": {"a": {"type": kind, **fields}, "b": {"type": "end"}}}, fields):
        try:
            parse_flow(document)
        except FlowError as exc:
            assert exc.problems and all(isinstance(p.message, str) and p.message for p in exc.problems)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_any_yaml_text_parses_or_is_a_flow_error(text: str) -> None:
    try:
        parse_flow(text)
    except FlowError:
        pass


@settings(max_examples=100, deadline=None)
@given(replies=st.lists(st.text(max_size=40), max_size=8))
async def test_the_demo_flow_takes_any_replies(replies: list[str]) -> None:
    talk = Conversation(parse_flow(DEMO_FLOW))
    await talk.say("hello")
    for reply in replies:
        turn = await talk.say(reply)
        assert all(o.content or o.blocks for o in turn.outputs)


def test_the_demo_flow_is_valid_and_every_node_is_reachable() -> None:
    flow = parse_flow(DEMO_FLOW)
    assert flow.start == "greet" and flow_warnings(flow) == []


def test_the_demo_flow_in_the_docs_is_the_one_the_first_start_creates() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "flows.md").read_text()
    section = docs.split("## The demo flow", 1)[1]
    text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert parse_flow_document(text)[0] == DEMO_FLOW


# ------------------------------------------------------------------------------------ engine: the demo


async def test_the_demo_flow_greets_captures_the_name_branches_and_hands_off_to_sales() -> None:
    talk = Conversation(parse_flow(DEMO_FLOW))
    turn = await talk.say("Hello! This is the demo user's first message.")
    (greeting,) = turn.outputs
    assert greeting.type is MessageType.BUTTON and greeting.content.startswith("Hi there! I'm the threadline demo")
    assert greeting.blocks == [
        {"type": "text", "text": greeting.content},
        {
            "type": "buttons",
            "buttons": [{"title": "Talk to sales", "payload": "sales"}, {"title": "Get support", "payload": "support"}],
        },
    ]
    assert talk.state.status is FlowStatus.WAITING and talk.state.node == "greet" and turn.actions == ()

    turn = await talk.say(_press("sales", "Talk to sales"))
    assert _texts(turn) == ["Happy to help. What's your name?"]
    assert talk.state.variables["topic"] == "sales" and talk.state.node == "ask_name"

    turn = await talk.say("  Ada  ")
    assert _texts(turn) == ["Thanks, Ada! I'm passing you to our sales team: a person will answer here shortly."]
    assert turn.actions == (Handoff("sales", "Ada wants to talk to sales", None, ("sales",)),)
    assert talk.state.status is FlowStatus.HANDED_OFF and turn.visited == ("ask_name", "route", "sales")

    # Back from the humans, the flow starts over, and remembers the name.
    turn = await talk.say("hi again")
    assert turn.outputs[0].content.startswith("Hi Ada! I'm the threadline demo agent")
    assert talk.state.turns == 4


async def test_the_demo_support_branch_by_typed_button_title_ends_with_help() -> None:
    talk = Conversation(parse_flow(DEMO_FLOW))
    await talk.say("hey")
    turn = await talk.say("get SUPPORT")  # SMS: no buttons to press, the end user types the title
    assert _texts(turn) == ["Happy to help. What's your name?"]
    assert talk.state.variables["topic"] == "support"
    await talk.say("Grace")
    turn = await talk.say("I can't LOG   IN since yesterday")
    assert _texts(turn) == [
        "To reset your password, open Settings > Security and choose Reset password: the link comes by email.",
        "Anything else, Grace? Just write again and I'll start over.",
    ]
    assert turn.actions == (End("done"),) and talk.state.status is FlowStatus.ENDED
    assert talk.state.variables["issue"] == "I can't LOG   IN since yesterday"


async def test_the_demo_asks_again_for_a_button_and_hands_off_after_three_misses() -> None:
    talk = Conversation(parse_flow(DEMO_FLOW))
    await talk.say("hello")
    turn = await talk.say("what is this?")
    (retry,) = turn.outputs
    assert retry.content == "Please pick one: Talk to sales, or Get support."
    assert retry.type is MessageType.BUTTON and retry.blocks is not None and retry.blocks[1]["type"] == "buttons"
    assert talk.state.attempts == 1 and talk.state.node == "greet"
    turn = await talk.say("hmm", "no idea")  # two replies in one turn: each is an attempt
    assert _texts(turn) == [
        "Please pick one: Talk to sales, or Get support.",
        "Let me get you a person: someone from our team will answer here shortly.",
    ]
    assert turn.actions == (Handoff("human", "asked for a human", None, ("support",)),)


async def test_an_invalid_reply_to_a_question_with_a_regex_gets_the_retry_message() -> None:
    talk = Conversation(parse_flow(DEMO_FLOW))
    await talk.say("hello")
    await talk.say("sales")  # the payload, typed
    turn = await talk.say("   ")
    assert _texts(turn) == ["Sorry, I missed that. What's your name?"]
    assert "name" not in talk.state.variables and talk.state.node == "ask_name"
    turn = await talk.say("Ada")
    assert turn.actions and isinstance(turn.actions[0], Handoff)


# ------------------------------------------------------------------------------- engine: node by node


async def test_several_replies_in_one_turn_answer_the_questions_in_order() -> None:
    flow = _flow(
        {
            "first": {"type": "ask", "text": "First name?", "var": "first", "next": "last"},
            "last": {"type": "ask", "text": "Last name?", "var": "last", "next": "bye"},
            "bye": {"type": "end", "message": "Bye {{first}} {{last}}"},
        }
    )
    talk = Conversation(flow)
    assert _texts(await talk.say("hi", "there")) == ["First name?"]  # the trigger answers nothing
    turn = await talk.say("Ada", "Lovelace", "ignored: the flow has ended")
    assert _texts(turn) == ["Last name?", "Bye Ada Lovelace"]
    assert talk.state.status is FlowStatus.ENDED and talk.state.input is not None
    assert talk.state.input.text == "Lovelace"


async def test_waiting_without_a_new_message_does_nothing() -> None:
    talk = Conversation(_flow({"q": {"type": "ask", "text": "?", "next": "e"}, "e": {"type": "end"}}))
    await talk.say("hi")
    before = talk.state
    turn = await advance(talk.flow, before, [], context=CONTEXT, http=_no_http())
    assert turn.outputs == () and turn.state == before and turn.visited == ()


async def test_keyword_cases_match_whole_words_in_any_case() -> None:
    flow = _flow(
        {
            "route": {
                "type": "branch",
                "cases": [
                    {"keywords": ["refund", "money back"], "next": "refund"},
                    {"keyword": "café", "next": "cafe"},
                ],
                "default": "other",
            },
            "refund": {"type": "end", "message": "refund"},
            "cafe": {"type": "end", "message": "cafe"},
            "other": {"type": "end", "message": "other"},
        }
    )
    cases = {
        "I want a REFUND!": "refund",
        "refunds are slow": "other",  # not the whole word
        "can I get my money\nback?": "refund",
        "un CAFÉ por favor": "cafe",
        "prefund": "other",
        "": "other",
    }
    for said, expected in cases.items():
        turn = await advance(flow, None, [Inbound(text=said)], context=CONTEXT, http=_no_http())
        assert _texts(turn) == [expected], said


async def test_regex_cases_store_their_named_groups() -> None:
    flow = _flow(
        {
            "route": {
                "type": "branch",
                "cases": [{"regex": r"order\s*#?(?P<order_id>\d{4,})", "next": "found"}],
                "default": "none",
            },
            "found": {"type": "end", "message": "Looking up order {{order_id}}"},
            "none": {"type": "end", "message": "Which order?"},
        }
    )
    turn = await advance(flow, None, [Inbound(text="where is order #12345?")], context=CONTEXT, http=_no_http())
    assert _texts(turn) == ["Looking up order 12345"] and turn.state and turn.state.variables["order_id"] == "12345"
    turn = await advance(flow, None, [Inbound(text="where is my order?")], context=CONTEXT, http=_no_http())
    assert _texts(turn) == ["Which order?"]


async def test_variable_cases_equals_contains_and_exists() -> None:
    flow = _flow(
        {
            "init": {"type": "set", "variables": {"tier": "Gold", "count": 3, "tags": ["vip", "beta"]}, "next": "b"},
            "b": {
                "type": "branch",
                "cases": [
                    {"var": "missing", "exists": True, "next": "wrong"},
                    {"var": "tier", "equals": "gold", "next": "c"},
                ],
                "default": "wrong",
            },
            "c": {"type": "branch", "cases": [{"var": "count", "equals": 3, "next": "d"}], "default": "wrong"},
            "d": {"type": "branch", "cases": [{"var": "tags", "contains": "VIP", "next": "e"}], "default": "wrong"},
            "e": {
                "type": "branch",
                "cases": [{"var": "user.info.plan", "contains": "pr", "next": "f"}],
                "default": "wrong",
            },
            "f": {"type": "branch", "cases": [{"var": "missing", "exists": False, "next": "ok"}], "default": "wrong"},
            "ok": {"type": "end", "message": "ok"},
            "wrong": {"type": "end", "message": "wrong"},
        }
    )
    turn = await advance(flow, None, [Inbound(text="hi")], context=CONTEXT, http=_no_http())
    assert _texts(turn) == ["ok"] and turn.visited == ("init", "b", "c", "d", "e", "f", "ok")


async def test_payload_cases_take_a_pressed_button_or_a_typed_payload() -> None:
    flow = _flow(
        {
            "route": {"type": "branch", "cases": [{"payload": ["BUY", "order"], "next": "buy"}], "default": "other"},
            "buy": {"type": "end", "message": "buy"},
            "other": {"type": "end", "message": "other"},
        }
    )
    for inbound, expected in [
        (_press("buy", "Buy now"), "buy"),
        (Inbound(text="Order"), "buy"),
        (Inbound(text="I'd like to order"), "other"),
    ]:
        turn = await advance(flow, None, [inbound], context=CONTEXT, http=_no_http())
        assert _texts(turn) == [expected], inbound


async def test_a_question_with_buttons_stores_the_payload_of_the_pressed_or_typed_button() -> None:
    flow = _flow(
        {
            "pick": {
                "type": "ask",
                "text": "Size?",
                "buttons": [{"title": "Small"}, {"title": "Large", "payload": "L"}],
                "var": "size",
                "next": "done",
            },
            "done": {"type": "end", "message": "{{size}} ({{input.title}})"},
        }
    )
    for said, expected in [("small", "Small (Small)"), ("LARGE", "L (Large)"), ("l", "L (Large)"), ("xl", "xl ()")]:
        talk = Conversation(flow)
        await talk.say("hi")
        assert _texts(await talk.say(said)) == [expected], said


async def test_send_nodes_make_template_and_media_messages() -> None:
    flow = _flow(
        {
            "t": {
                "type": "send",
                "template": {"name": "order_update", "language": "en_US", "params": ["{{user.display_name}}", "42"]},
                "next": "m",
            },
            "m": {
                "type": "send",
                "media": {"type": "image", "url": "https://cdn.example.com/{{plan}}.png", "caption": "Your plan"},
                "next": "d",
            },
            "d": {
                "type": "send",
                "media": {"type": "document", "url": "https://cdn.example.com/terms.pdf"},
                "next": "e",
            },
            "e": {"type": "end"},
        },
        variables={"plan": "pro"},
    )
    turn = await advance(flow, None, [], context=CONTEXT, http=_no_http())
    template, image, document = turn.outputs
    assert template.type is MessageType.TEMPLATE and template.content == "" and template.media_url is None
    assert template.blocks == [
        {"type": "template", "name": "order_update", "language": "en_US", "params": ["Ada Lovelace", "42"]}
    ]
    assert image.type is MessageType.IMAGE and image.media_url == "https://cdn.example.com/pro.png"
    assert image.content == "Your plan" and image.blocks == [
        {"type": "image", "url": "https://cdn.example.com/pro.png"},
        {"type": "text", "text": "Your plan"},
    ]
    assert document.type is MessageType.DOCUMENT and document.content == "" and document.blocks is not None
    assert turn.actions == (End("e"),)


async def test_set_nodes_assign_in_order_and_keep_json_types() -> None:
    flow = _flow(
        {
            "s": {
                "type": "set",
                "variables": {"first": "{{user.display_name}}", "greeting": "Hello {{first}}", "n": 2, "copy": "{{n}}"},
                "next": "e",
            },
            "e": {"type": "end", "message": "{{greeting}} / {{copy}} / {{nothing | fallback text}}"},
        },
        variables={"n": 7},
    )
    turn = await advance(flow, None, [], context=CONTEXT, http=_no_http())
    assert _texts(turn) == ["Hello Ada Lovelace / 2 / fallback text"]
    assert turn.state and turn.state.variables["copy"] == 2


async def test_an_http_node_sends_the_interpolated_request_and_saves_fields_of_the_answer() -> None:
    flow = _flow(
        {
            "ask": {"type": "ask", "text": "Order number?", "var": "order", "next": "lookup"},
            "lookup": {
                "type": "http",
                "method": "post",
                "url": "https://shop.example.com/orders/{{order}}?who={{user.display_name}}",
                "headers": {"X-Plan": "{{user.info.plan}}", "X-Note": "{{order}}"},
                "body": {"order": "{{order}}", "qty": "{{qty}}", "text": "order {{order}}"},
                "timeout": 3,
                "save": {"status": "data.status", "first_item": "data.items.0.sku", "code": "$status", "nope": "x.y"},
                "next": "tell",
                "on_error": "sorry",
            },
            "tell": {"type": "end", "message": "Order {{order}}: {{status}} ({{first_item}}, HTTP {{code}})"},
            "sorry": {"type": "end", "message": "Sorry, I cannot look that up now."},
        },
        variables={"qty": 2},
    )
    answer = HttpResult(200, {"data": {"status": "shipped", "items": [{"sku": "A-1"}]}}, is_json=True)
    http = FakeHttp(answer)
    talk = Conversation(flow, http)
    await talk.say("hi")
    turn = await talk.say("12/34\r\nX: y")
    assert _texts(turn) == ["Order 12/34\r\nX: y: shipped (A-1, HTTP 200)"]
    (request,) = http.requests
    assert request.method == "POST" and request.timeout == 3
    assert request.url == "https://shop.example.com/orders/12%2F34%0D%0AX%3A%20y?who=Ada%20Lovelace"
    assert request.headers == {"X-Plan": "pro", "X-Note": "12/34  X: y"}
    assert request.json == {"order": "12/34\r\nX: y", "qty": 2, "text": "order 12/34\r\nX: y"}
    assert talk.state.variables["nope"] is None
    (call,) = turn.http_calls
    assert call.node == "lookup" and call.status == 200 and call.error is None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (HttpResult(503, {"error": "down"}, error="HTTP 503", is_json=True), "HTTP 503"),
        (HttpResult(None, error="timed out after 3 s"), "timed out after 3 s"),
        (HttpResult(200, None, is_json=False), "the answer is not JSON"),
        (RuntimeError("the caller broke"), "RuntimeError: the caller broke"),
        (HttpResult(200, {"big": "x" * 20_000}, is_json=True), "big: larger than 16384 bytes"),
    ],
)
async def test_a_failed_http_call_goes_to_on_error_and_saves_nothing(answer: Any, error: str) -> None:
    flow = _flow(
        {
            "call": {
                "type": "http",
                "url": "https://api.example.com/x",
                "save": {"big": "big"},
                "next": "ok",
                "on_error": "failed",
            },
            "ok": {"type": "end", "message": "ok"},
            "failed": {"type": "end", "message": "failed"},
        }
    )
    turn = await advance(flow, None, [], context=CONTEXT, http=FakeHttp(answer))
    assert _texts(turn) == ["failed"] and turn.state and "big" not in turn.state.variables
    assert turn.http_calls[0].error == error


async def test_without_on_error_a_failed_http_call_goes_on_to_next() -> None:
    flow = _flow(
        {
            "call": {"type": "http", "url": "https://api.example.com/x", "next": "ok"},
            "ok": {"type": "end", "message": "ok"},
        }
    )
    turn = await advance(flow, None, [], context=CONTEXT, http=FakeHttp(HttpResult(500, error="HTTP 500")))
    assert _texts(turn) == ["ok"] and turn.http_calls[0].status == 500


async def test_a_loop_that_never_waits_stops_at_the_step_limit_and_changes_nothing() -> None:
    flow = _flow(
        {
            "a": {"type": "send", "text": "tick", "next": "b"},
            "b": {"type": "set", "variables": {"x": 1}, "next": "a"},
        }
    )
    turn = await advance(flow, None, [Inbound(text="hi")], context=CONTEXT, http=_no_http(), max_steps=10)
    assert not turn.ok and turn.error is not None and turn.error.code == "step_limit"
    assert "ran 10 nodes in one turn" in turn.error.message and "a, b" in turn.error.message
    assert turn.outputs == () and turn.actions == () and turn.state is None and len(turn.visited) == 11

    # A loop through a question is fine: every turn waits.
    looping = _flow(
        {
            "q": {"type": "ask", "text": "Again?", "var": "answer", "next": "route"},
            "route": {"type": "branch", "cases": [{"keyword": "stop", "next": "bye"}], "default": "q"},
            "bye": {"type": "end"},
        }
    )
    talk = Conversation(looping)
    await talk.say("start")
    for _ in range(30):
        assert _texts(await talk.say("more")) == ["Again?"]
    assert (await talk.say("stop")).actions == (End("bye"),)
    assert talk.state.turns == 32 and talk.state.steps == 1 + 30 * 3 + 3  # a resumed question counts again


async def test_a_state_that_does_not_fit_the_flow_is_an_error() -> None:
    flow = _flow({"q": {"type": "ask", "text": "?", "next": "e"}, "e": {"type": "end"}})
    state = FlowState(status=FlowStatus.WAITING, node="gone")
    turn = await advance(flow, state, [Inbound(text="hi")], context=CONTEXT, http=_no_http())
    assert turn.error is not None and turn.error.code == "state_invalid" and turn.state is state


async def test_without_restart_a_finished_flow_stays_silent() -> None:
    flow = _flow({"e": {"type": "end", "message": "Bye"}}, restart=False)
    talk = Conversation(flow)
    assert _texts(await talk.say("hi")) == ["Bye"]
    turn = await talk.say("hello?")
    assert turn.outputs == () and turn.actions == () and talk.state.status is FlowStatus.ENDED


async def test_handoff_carries_reason_assignee_and_tags() -> None:
    flow = _flow(
        {
            "h": {
                "type": "handoff",
                "message": "A human will take it from here, {{user.display_name}}.",
                "reason": "VIP on plan {{user.info.plan}}",
                "assign_to": "lead@example.com",
                "tags": ["vip", "escalated"],
            }
        }
    )
    turn = await advance(flow, None, [Inbound(text="hi")], context=CONTEXT, http=_no_http())
    assert _texts(turn) == ["A human will take it from here, Ada Lovelace."]
    assert turn.actions == (Handoff("h", "VIP on plan pro", "lead@example.com", ("vip", "escalated")),)
    assert turn.state and turn.state.status is FlowStatus.HANDED_OFF and turn.state.node == "h"


async def test_interpolation_never_evaluates_what_the_end_user_typed() -> None:
    flow = _flow(
        {
            "q": {"type": "ask", "text": "Say something", "var": "said", "next": "echo"},
            "echo": {
                "type": "end",
                "message": "You said: {{said}} | {{said.__class__}} | {{said.upper}} | {{user.info.__dict__ | none}}",
            },
        },
        variables={"secret": "s3cr3t"},
    )
    talk = Conversation(flow)
    await talk.say("hi")
    turn = await talk.say("{{secret}} {{user.address}} {% import os %} ${HOME}")
    assert _texts(turn) == ["You said: {{secret}} {{user.address}} {% import os %} ${HOME} |  |  | none"]
    for text in ("{{ __import__('os') }}", "{{ said() }}", "{{ a[0] }}", "{{ a + b }}", "{{ a | b }} {{ x y }}"):
        problems = _problems({"start": "e", "nodes": {"e": {"type": "end", "message": text}}})
        assert problems[0].startswith("nodes.e.message: bad placeholder"), text


def test_inbound_from_a_stored_message() -> None:
    press = Inbound.from_message(
        type="button", content=None, blocks=[{"type": "button_reply", "payload": "yes", "title": "Yes!"}]
    )
    assert press == Inbound(text="Yes!", type=MessageType.BUTTON, payload="yes", title="Yes!")
    typed = Inbound.from_message(type=MessageType.TEXT, content="hello", blocks=None)
    assert typed == Inbound(text="hello")
    image = Inbound.from_message(type="image", content="", media_url="https://x/y.png")
    assert image.type is MessageType.IMAGE and image.media_url == "https://x/y.png" and image.text == ""
    odd = Inbound.from_message(type="sticker", content="?", blocks=[{"type": "button_reply", "title": "Only title"}])
    assert odd.type is MessageType.TEXT and odd.payload == "Only title"


async def test_the_state_survives_a_json_round_trip_and_a_media_reply_is_stored() -> None:
    flow = _flow(
        {
            "photo": {"type": "ask", "text": "Send a photo", "var": "photo", "next": "thanks"},
            "thanks": {"type": "end", "message": "Got {{photo}}"},
        }
    )
    first = await advance(flow, None, [Inbound(text="hi")], context=CONTEXT, http=_no_http())
    assert first.state is not None
    stored = json.loads(json.dumps(first.state.to_json()))
    restored = FlowState.from_json(copy.deepcopy(stored))
    assert restored == first.state and restored.to_json() == stored
    photo = Inbound(type=MessageType.IMAGE, media_url="https://cdn.example.com/p.jpg")
    turn = await advance(flow, restored, [photo], context=CONTEXT, http=_no_http())
    assert _texts(turn) == ["Got https://cdn.example.com/p.jpg"]
    assert restored.status is FlowStatus.WAITING  # advance does not change the state it is given


# ----------------------------------------------------------------------------- the default HTTP caller


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/slow":
            threading.Event().wait(2)
            self._answer(200, b"{}")
        elif self.path == "/missing":
            self._answer(404, b'{"error": "no"}')
        elif self.path == "/text":
            self._answer(200, b"hello", "text/plain")
        elif self.path == "/big":
            self._answer(200, b"[" + b"1," * 600_000 + b"1]")
        else:
            self._answer(200, json.dumps({"path": self.path, "agent": self.headers["user-agent"]}).encode())

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["content-length"]))
        self._answer(201, json.dumps({"got": json.loads(data), "auth": self.headers.get("authorization")}).encode())


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_httpx_caller_calls_a_real_server_and_never_raises(local_server: str) -> None:
    caller = HttpxCaller(allow_private=True, max_bytes=1_000_000)
    ok = await caller(HttpRequest("GET", f"{local_server}/orders/1?x=y"))
    assert ok.ok and ok.status == 200 and ok.is_json and ok.body["path"] == "/orders/1?x=y"
    assert ok.body["agent"].startswith("threadline-flow/")
    posted = await caller(HttpRequest("POST", f"{local_server}/o", {"authorization": "Bearer t"}, {"a": [1, "é"]}))
    assert posted.status == 201 and posted.body == {"got": {"a": [1, "é"]}, "auth": "Bearer t"}
    missing = await caller(HttpRequest("GET", f"{local_server}/missing"))
    assert not missing.ok and missing.status == 404 and missing.error == "HTTP 404" and missing.body == {"error": "no"}
    text = await caller(HttpRequest("GET", f"{local_server}/text"))
    assert text.ok and not text.is_json and text.body is None
    big = await caller(HttpRequest("GET", f"{local_server}/big"))
    assert not big.ok and big.error == "the answer is larger than 1000000 bytes"
    slow = await caller(HttpRequest("GET", f"{local_server}/slow", timeout=0.3))
    assert slow.status is None and slow.error == "timed out after 0.3 s"
    bad = await caller(HttpRequest("GET", "file:///etc/passwd"))
    assert bad.status is None and bad.error is not None and bad.error.startswith("refused: the URL")


async def test_the_httpx_caller_refuses_private_addresses_by_default(local_server: str) -> None:
    refused = await HttpxCaller()(HttpRequest("GET", f"{local_server}/orders/1", timeout=2))
    assert refused.status is None and refused.error is not None and "loopback" in refused.error


async def test_an_http_node_with_the_default_caller(local_server: str) -> None:
    flow = _flow(
        {
            "call": {
                "type": "http",
                "method": "POST",
                "url": f"{local_server}/echo",
                "body": {"name": "{{user.display_name}}"},
                "save": {"echoed": "got.name", "code": "$status"},
                "next": "e",
            },
            "e": {"type": "end", "message": "{{echoed}} {{code}}"},
        }
    )
    turn = await advance(flow, None, [], context=CONTEXT, http=HttpxCaller(allow_private=True))
    assert _texts(turn) == ["Ada Lovelace 201"]


# ------------------------------------------------------------------------------------------------- API


async def test_creating_a_flow_agent_version_with_a_bad_flow_is_a_422_naming_the_path(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/agents", json={"name": "Scripted"})
    assert r.status_code == 201, r.text
    url = f"/v1/agents/{r.json()['id']}/versions"
    bad = copy.deepcopy(DEMO_FLOW)
    bad["nodes"]["ask_name"]["next"] = "foo"
    r = await api.post(url, json={"mode": "FLOW", "provider": "flow", "flow": bad})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == "flow" and error["message"] == "flow: nodes.ask_name.next: no node 'foo'"

    r = await api.post(url, json={"mode": "FLOW", "flow": {"start": "a", "nodes": {"a": {"type": "jump"}}}})
    assert r.status_code == 422 and "nodes.a.type: unknown node type 'jump'" in r.json()["error"]["message"]
    r = await api.post(url, json={"mode": "FLOW", "flow": "start: a\nnodes: [\n"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("flow: is not valid YAML")
    r = await api.post(url, json={"mode": "FLOW", "flow": 42})
    assert r.status_code == 422 and r.json()["error"]["param"] == "flow"
    r = await api.post("/v1/agents", json={"name": "x", "version": {"mode": "FLOW", "flow": bad}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "version.flow"
    assert (await api.get(url)).json()["data"] == []


async def test_a_flow_given_as_yaml_is_stored_and_read_back_as_a_json_object(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/agents", json={"name": "Scripted"})
    agent_id = r.json()["id"]
    text = "start: hi\nnodes:\n  hi: {type: end, message: 'Hello {{user.display_name | there}}'}\n"
    r = await api.post(f"/v1/agents/{agent_id}/versions", json={"mode": "FLOW", "provider": "flow", "flow": text})
    assert r.status_code == 201, r.text
    expected = {"start": "hi", "nodes": {"hi": {"type": "end", "message": "Hello {{user.display_name | there}}"}}}
    assert r.json()["flow"] == expected
    r = await api.get(f"/v1/agents/{agent_id}")
    assert r.json()["current_version"]["flow"] == expected
    r = await api.post(f"/v1/agents/{agent_id}/versions", json={"mode": "FLOW", "flow": DEMO_FLOW})
    assert r.status_code == 201 and r.json()["flow"] == DEMO_FLOW
