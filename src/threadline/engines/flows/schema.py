"""The flow document of a FLOW agent version: its models, and ``parse_flow`` with errors that name the path.

A flow is a JSON object (or the same document as YAML text)::

    version: 1            # the format; 1 is the only one so far
    start: greet          # the node the conversation begins at
    restart: true         # after an end or a handoff, the next message starts the flow again
    variables: {}         # initial values
    nodes:                # node id -> node; a node's ``type`` says what it does
      greet: {type: ask, text: "Hi! What's your name?", var: name, next: bye}
      bye: {type: end, message: "Nice to meet you, {{name}}."}

Node types: ``send`` (a text, maybe with buttons, a template or a media message), ``ask`` (alias
``input``: send a prompt, wait for the reply, store it in a variable, optionally check it), ``branch``
(ordered cases on a button payload, keywords, a regular expression or a variable), ``http`` (call an
endpoint, store fields of its JSON answer), ``set`` (assign variables), ``handoff`` (to a human) and
``end``. ``docs/flows.md`` describes every field.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from threadline.engines.flows.templating import PATH_RE, json_template_problem, template_problem
from threadline.kit.schemas import MAX_JSON_DEPTH, storage_problem

FORMAT_VERSION: Final = 1
MAX_NODES: Final = 500
MAX_YAML_CHARS: Final = 512 * 1024
MAX_PROBLEMS_SHOWN: Final = 10
NODE_KINDS: Final = ("send", "ask", "input", "branch", "http", "set", "handoff", "end")
RESERVED_VARIABLES: Final = frozenset({"input"})
"""Names a flow may read but not assign: ``input`` is the end user's latest message."""

_NODE_ID_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_VAR_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HEADER_RE: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_RESPONSE_PATH_RE: Final = re.compile(r"^(\$|\$status|[^.\s][^.]*(\.[^.]+)*)$")
_LANGUAGE_RE: Final = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
_TEMPLATE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,512}$")


# ------------------------------------------------------------------------------------------------ errors


@dataclass(frozen=True, slots=True)
class FlowProblem:
    """One thing wrong with a flow: where (a dotted path in the document, '' for the whole) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FlowError(ValueError):
    """A flow document that cannot run; ``problems`` lists what is wrong, each with its path."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        super().__init__(f"{shown} (and {more} more)" if more > 0 else shown)

    @classmethod
    def at(cls, path: str, message: str) -> FlowError:
        return cls([FlowProblem(path, message)])


# ------------------------------------------------------------------------------------------- field types


def _check_node_id(value: str) -> str:
    if not _NODE_ID_RE.match(value):
        raise PydanticCustomError(
            "flow_node_id",
            "{value} is not a valid node id: letters, digits, '_' and '-', starting with a letter or '_', "
            "at most 64 characters",
            {"value": repr(value)},
        )
    return value


def _check_variable(value: str) -> str:
    if not _VAR_RE.match(value):
        raise PydanticCustomError(
            "flow_variable",
            "{value} is not a valid variable name: letters, digits and '_', starting with a letter or '_', "
            "at most 64 characters",
            {"value": repr(value)},
        )
    if value in RESERVED_VARIABLES:
        raise PydanticCustomError("flow_variable", "{value} is reserved (the latest input)", {"value": repr(value)})
    return value


def _check_path(value: str) -> str:
    if not PATH_RE.match(value):
        raise PydanticCustomError(
            "flow_variable_path",
            "{value} is not a variable name or dotted path (e.g. name, user.display_name, order.items.0)",
            {"value": repr(value)},
        )
    return value


def _check_template(value: str) -> str:
    if (problem := template_problem(value)) is not None:
        raise PydanticCustomError("flow_template", "{problem}", {"problem": problem})
    return value


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression (cached: flows are parsed on every turn)."""
    return re.compile(pattern)


def _check_regex(value: str) -> str:
    try:
        compiled(value)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise PydanticCustomError(
            "flow_regex", "not a valid regular expression: {error}", {"error": str(exc) or type(exc).__name__}
        ) from None
    return value


def _check_response_path(value: str) -> str:
    if not _RESPONSE_PATH_RE.match(value):
        raise PydanticCustomError(
            "flow_response_path",
            "{value} is not a response path: a dotted path into the JSON answer (data.items.0.id), "
            "'$' for all of it, or '$status' for the HTTP status",
            {"value": repr(value)},
        )
    return value


def _check_header(value: str) -> str:
    if not _HEADER_RE.match(value):
        raise PydanticCustomError("flow_header", "{value} is not a valid HTTP header name", {"value": repr(value)})
    return value


def _check_json_templates(value: Any) -> None:
    if (found := json_template_problem(value)) is not None:
        subpath, problem = found
        # _problems() appends ``subpath`` to the error's location: the path then ends at the bad string.
        raise PydanticCustomError("flow_template", "{problem}", {"problem": problem, "subpath": subpath})


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


NodeId = Annotated[str, AfterValidator(_check_node_id)]
Variable = Annotated[str, AfterValidator(_check_variable)]
VariablePath = Annotated[str, AfterValidator(_check_path)]
Text = Annotated[str, Field(max_length=10_000), AfterValidator(_check_template)]
Regex = Annotated[str, Field(min_length=1, max_length=1_000), AfterValidator(_check_regex)]
Words = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]],
    BeforeValidator(_listify),
    Field(min_length=1, max_length=100),
]
Description = Annotated[str, Field(max_length=2_000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------- message parts


class Button(_Model):
    """A reply button. ``payload`` is what the flow sees when it is pressed; it defaults to the title."""

    title: Annotated[Text, Field(min_length=1, max_length=64)]
    payload: Annotated[str, Field(min_length=1, max_length=256)] | None = None


def _check_params(value: Any) -> Any:
    if isinstance(value, list):
        items: list[tuple[str, Any]] = [(str(i), v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise PydanticCustomError("flow_template_params", "must be a list (positional) or an object (named)")
    if len(items) > 50:
        raise PydanticCustomError("flow_template_params", "at most 50 parameters")
    for key, item in items:
        if not isinstance(item, str):
            raise PydanticCustomError("flow_template_params", "parameter {key} must be a string", {"key": key})
        if (problem := template_problem(item)) is not None:
            raise PydanticCustomError("flow_template", "{problem}", {"problem": problem, "subpath": key})
    return value


class MessageTemplate(_Model):
    """A pre-approved template (WhatsApp's); ``text`` is the fallback for channels that cannot show one."""

    name: Annotated[str, Field(pattern=_TEMPLATE_NAME_RE.pattern)]
    language: Annotated[str, Field(pattern=_LANGUAGE_RE.pattern)] = "en"
    params: Annotated[list[str] | dict[str, str], BeforeValidator(_check_params)] = Field(default_factory=list)
    text: Text | None = None


class Media(_Model):
    type: Literal["image", "audio", "video", "document"]
    url: Annotated[Text, Field(min_length=1, max_length=2048)]
    caption: Text | None = None


# ------------------------------------------------------------------------------------------------- nodes


class _Node(_Model):
    description: Description | None = None

    def targets(self) -> list[tuple[str, str]]:
        """The nodes this one may go to: (field path relative to the node, node id)."""
        return []


class SendNode(_Node):
    """Sends one message: a text (with buttons, maybe), a template, or a media message."""

    type: Literal["send"]
    text: Text | None = None
    buttons: Annotated[list[Button], Field(max_length=10)] = Field(default_factory=list)
    template: MessageTemplate | None = None
    media: Media | None = None
    next: NodeId

    @model_validator(mode="after")
    def _one_message(self) -> SendNode:
        given = [name for name in ("text", "template", "media") if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "flow_send", "give exactly one of text, template or media (got {given})", {"given": _names(given)}
            )
        if self.buttons and self.text is None:
            raise PydanticCustomError("flow_send", "buttons go with a text")
        return self

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next)]


class AskCheck(_Model):
    """What a reply must be; a reply that is not gets ``message`` and the question stays open."""

    regex: Regex | None = Field(default=None, description="The whole reply (trimmed) must match.")
    buttons: bool = Field(default=False, description="The reply must be one of the buttons (pressed or typed).")
    message: Text = "Sorry, I didn't get that. Please try again."
    max_attempts: Annotated[int, Field(ge=1, le=20)] | None = None
    on_invalid: NodeId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AskCheck:
        if self.regex is None and not self.buttons:
            raise PydanticCustomError("flow_ask", "give regex, or buttons: true")
        if (self.max_attempts is None) != (self.on_invalid is None):
            raise PydanticCustomError("flow_ask", "max_attempts and on_invalid go together")
        return self


class AskNode(_Node):
    """Sends ``text`` (if any), waits for the end user's reply and stores it in ``var``."""

    type: Literal["ask", "input"]
    text: Text | None = None
    buttons: Annotated[list[Button], Field(max_length=10)] = Field(default_factory=list)
    var: Variable | None = None
    validation: AskCheck | None = Field(default=None, alias="validate")
    next: NodeId

    @model_validator(mode="after")
    def _consistent(self) -> AskNode:
        if self.buttons and self.text is None:
            raise PydanticCustomError("flow_ask", "buttons go with a text")
        if self.validation is not None and self.validation.buttons and not self.buttons:
            raise PydanticCustomError("flow_ask", "validate.buttons needs buttons")
        return self

    def targets(self) -> list[tuple[str, str]]:
        found = [("next", self.next)]
        if self.validation is not None and self.validation.on_invalid is not None:
            found.append(("validate.on_invalid", self.validation.on_invalid))
        return found


_CONDITIONS: Final = ("payload", "keywords", "regex", "var")
_TESTS: Final = ("equals", "contains", "exists")


class Case(_Model):
    """One branch case: exactly one condition (``payload``, ``keyword``, ``regex`` or ``var`` with one of
    ``equals``, ``contains``, ``exists``) and the node to go to when it holds."""

    payload: Words | None = None
    # Both spellings read naturally ("keyword: refund", "keywords: [refund, money back]").
    keywords: Words | None = Field(default=None, validation_alias=AliasChoices("keyword", "keywords"))
    regex: Regex | None = None
    var: VariablePath | None = None
    equals: Any = None
    contains: Annotated[str, Field(max_length=1_000)] | None = None
    exists: bool | None = None
    next: NodeId

    @model_validator(mode="after")
    def _one_condition(self) -> Case:
        given = [name for name in _CONDITIONS if getattr(self, name) is not None]
        if len(given) != 1:
            given = ["keyword" if name == "keywords" else name for name in given]
            raise PydanticCustomError(
                "flow_case",
                "give exactly one of payload, keyword, regex or var (got {given})",
                {"given": _names(given)},
            )
        tests = [name for name in _TESTS if name in self.model_fields_set]
        if self.var is not None and len(tests) != 1:
            raise PydanticCustomError(
                "flow_case",
                "var needs exactly one of equals, contains or exists (got {given})",
                {"given": _names(tests)},
            )
        if self.var is None and tests:
            raise PydanticCustomError("flow_case", "{test} goes with var", {"test": tests[0]})
        if "exists" in tests and self.exists is None:
            raise PydanticCustomError("flow_case", "exists must be true or false")
        if not (self.equals is None or isinstance(self.equals, str | int | float | bool)):
            raise PydanticCustomError("flow_case", "equals must be a string, a number, true, false or null")
        return self


class BranchNode(_Node):
    """Goes to the ``next`` of the first case that holds, else to ``default``."""

    type: Literal["branch"]
    cases: Annotated[list[Case], Field(min_length=1, max_length=100)]
    default: NodeId

    def targets(self) -> list[tuple[str, str]]:
        return [(f"cases.{i}.next", case.next) for i, case in enumerate(self.cases)] + [("default", self.default)]


class HttpNode(_Node):
    """Calls an endpoint; ``save`` stores fields of its JSON answer. A failure (no answer, a status that is
    not 2xx, an answer that is not JSON when ``save`` wants fields) goes to ``on_error`` (default: ``next``)."""

    type: Literal["http"]
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_upper)] = "GET"
    url: Annotated[Text, Field(min_length=1, max_length=2048)]
    headers: Annotated[
        dict[Annotated[str, AfterValidator(_check_header)], Annotated[Text, Field(max_length=4096)]],
        Field(max_length=30),
    ] = Field(default_factory=dict)
    body: Any = None
    timeout: Annotated[float, Field(gt=0, le=30)] = 10.0
    save: Annotated[
        dict[Variable, Annotated[str, Field(max_length=512), AfterValidator(_check_response_path)]],
        Field(max_length=50),
    ] = Field(default_factory=dict)
    next: NodeId
    on_error: NodeId | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise PydanticCustomError("flow_http", "must start with http:// or https://")
        if "{{" in rest.split("/", 1)[0].split("?", 1)[0]:
            # Placeholders are for paths and queries (where values are percent-encoded), never the host.
            raise PydanticCustomError("flow_http", "the host may not contain placeholders")
        return url

    @field_validator("body")
    @classmethod
    def _body(cls, body: Any) -> Any:
        _check_json_templates(body)
        return body

    @model_validator(mode="after")
    def _checks(self) -> HttpNode:
        if self.body is not None and self.method in ("GET", "DELETE"):
            raise PydanticCustomError("flow_http", "a {method} request has no body", {"method": self.method})
        return self

    def targets(self) -> list[tuple[str, str]]:
        found = [("next", self.next)]
        if self.on_error is not None:
            found.append(("on_error", self.on_error))
        return found


class SetNode(_Node):
    """Assigns variables (JSON values; placeholders in strings are filled in)."""

    type: Literal["set"]
    variables: Annotated[dict[Variable, Any], Field(min_length=1, max_length=100)]
    next: NodeId

    @field_validator("variables")
    @classmethod
    def _templates(cls, variables: dict[str, Any]) -> dict[str, Any]:
        _check_json_templates(variables)
        return variables

    def targets(self) -> list[tuple[str, str]]:
        return [("next", self.next)]


class HandoffNode(_Node):
    """Hands the thread to a human: ``message`` to the end user; reason, assignee and tags for the operators.
    The flow stops here (see ``Flow.restart``)."""

    type: Literal["handoff"]
    message: Text | None = None
    reason: Annotated[Text, Field(max_length=1_000)] | None = None
    assign_to: Annotated[str, Field(min_length=1, max_length=320, description="A user id or email.")] | None = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]], Field(max_length=20)] = (
        Field(default_factory=list)
    )


class EndNode(_Node):
    """Ends the conversation, with a last ``message`` if given."""

    type: Literal["end"]
    message: Text | None = None


AnyNode = SendNode | AskNode | BranchNode | HttpNode | SetNode | HandoffNode | EndNode
Node = Annotated[AnyNode, Field(discriminator="type")]


class Flow(_Model):
    """A parsed, checked flow document."""

    version: Literal[1] = FORMAT_VERSION
    description: Description | None = None
    start: NodeId
    restart: bool = Field(default=True, description="After an end or a handoff, the next message starts over.")
    variables: Annotated[dict[Variable, Any], Field(max_length=100)] = Field(default_factory=dict)
    nodes: Annotated[dict[NodeId, Node], Field(min_length=1, max_length=MAX_NODES)]

    @field_validator("variables")
    @classmethod
    def _templates(cls, variables: dict[str, Any]) -> dict[str, Any]:
        _check_json_templates(variables)
        return variables


# ------------------------------------------------------------------------------------------------- parse


def parse_flow(source: Mapping[str, Any] | str) -> Flow:
    """The flow in ``source`` (a JSON object, or YAML text), checked; ``FlowError`` names what is wrong."""
    return parse_flow_document(source)[1]


def parse_flow_document(source: Mapping[str, Any] | str) -> tuple[dict[str, Any], Flow]:
    """(the document as a plain JSON object, for storing; the parsed flow). ``FlowError`` if it is not one."""
    document = load_yaml(source) if isinstance(source, str) else source
    if not isinstance(document, Mapping):
        raise FlowError.at(
            "", f"must be a JSON object (or YAML text of one) with start and nodes, not {_kind(document)}"
        )
    document = dict(document)
    if (problem := _json_problem(document)) is not None:
        raise FlowError([problem])
    try:
        flow = Flow.model_validate(document)
    except ValidationError as exc:
        raise FlowError(_problems(exc)) from None
    if problems := _reference_problems(flow):
        raise FlowError(problems)
    return document, flow


def flow_warnings(flow: Flow) -> list[FlowProblem]:
    """What is allowed but probably a mistake: nodes that cannot be reached from ``start``."""
    return [
        FlowProblem(f"nodes.{node_id}", "unreachable from start")
        for node_id in flow.nodes
        if node_id not in _reachable(flow)
    ]


def _reachable(flow: Flow) -> set[str]:
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for _, target in flow.nodes[todo.pop()].targets():
            if target not in seen and target in flow.nodes:
                seen.add(target)
                todo.append(target)
    return seen


def _reference_problems(flow: Flow) -> list[FlowProblem]:
    problems = []
    if flow.start not in flow.nodes:
        problems.append(FlowProblem("start", f"no node {flow.start!r}{_did_you_mean(flow, flow.start)}"))
    for node_id, node in flow.nodes.items():
        for path, target in node.targets():
            if target not in flow.nodes:
                problems.append(
                    FlowProblem(f"nodes.{node_id}.{path}", f"no node {target!r}{_did_you_mean(flow, target)}")
                )
    return problems


def _did_you_mean(flow: Flow, wanted: str) -> str:
    folded = wanted.casefold()
    for node_id in flow.nodes:
        if node_id.casefold() == folded:
            return f" (did you mean {node_id!r}?)"
    return ""


def _problems(exc: ValidationError) -> list[FlowProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in NODE_KINDS:
            del loc[2]  # the union's tag, which pydantic puts in the location
        if loc and loc[-1] == "[key]":
            loc.pop()
        kind, message = error["type"], error["msg"]
        subpath = (error.get("ctx") or {}).get("subpath")
        if subpath:
            loc.extend(str(subpath).split("."))
        if kind == "union_tag_invalid":
            loc.append("type")
            given = error["input"].get("type") if isinstance(error["input"], dict) else None
            message = f"unknown node type {given!r}; expected one of: {', '.join(NODE_KINDS)}"
        elif kind == "union_tag_not_found":
            loc.append("type")
            message = f"is required: one of {', '.join(NODE_KINDS)}"
        elif kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a known field here"
        elif kind == "literal_error" and loc == ["version"]:
            message = f"must be {FORMAT_VERSION} (the only flow format so far)"
        problems.append(FlowProblem(".".join(str(p) for p in loc), message))
    return problems


def _json_problem(document: Any) -> FlowProblem | None:
    """Refuses what JSON cannot hold (YAML dates, sets, bytes, NaN, keys that are not strings)."""
    if (problem := storage_problem(document)) is not None:
        return FlowProblem("", problem)
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return FlowProblem(path, f"nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, str):
                    return FlowProblem(path, f"has a key that is not a string ({key!r}); quote it")
                stack.append((f"{path}.{key}" if path else key, value, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), value, depth + 1) for i, value in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return FlowProblem(path, "must be a finite number (JSON has no NaN or Infinity)")
        elif not (item is None or isinstance(item, str | bool | int)):
            return FlowProblem(path, f"is {_kind(item)}, which JSON cannot hold; quote it")
    return None


# -------------------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML, and stricter: no aliases (an alias bomb expands to gigabytes), no duplicate keys (the
    second would silently replace the first), and dates stay strings (JSON has none)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a flow", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """The value of YAML (or JSON) ``text``; ``FlowError`` saying where it is malformed."""
    if len(text) > MAX_YAML_CHARS:
        raise FlowError.at("", f"is longer than {MAX_YAML_CHARS} characters")
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no Python objects
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})"
        raise FlowError.at("", f"is not valid YAML: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise FlowError.at("", f"is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise FlowError.at("", "is not valid YAML: it nests too deeply") from None
    except Exception as exc:  # PyYAML's constructors let some errors through ("!!int abc" is a ValueError)
        raise FlowError.at("", f"is not valid YAML: a value does not fit its tag ({type(exc).__name__})") from None


# ------------------------------------------------------------------------------------------------ helpers


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")
