from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from threadline.kit.schemas import (
    NOT_BLANK,
    DocumentedAs,
    IdRef,
    InputModel,
    ListPage,
    Metadata,
    NotNull,
    OutputModel,
    bounded_json,
)
from threadline.models import Agent, AgentVersion
from threadline.models.enums import AgentMode, AgentType

AgentName = Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]
Description = Annotated[str, Field(max_length=10_000)]
VersionName = Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]
Provider = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Who answers: e.g. 'openai', 'local', 'flow'.",
        examples=["openai"],
    ),
]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
MAX_TOOLS = 128


def _tool_definitions() -> Any:
    # Imported when the document is built: the runtime package (threadline.runs) imports this one.
    from threadline.engines.tools import ToolDefinition

    return Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS)]


def _flow_document() -> Any:
    from threadline.engines.flows.schema import Flow

    return Flow


Tools = Annotated[
    list[dict[str, Any]],
    Field(
        max_length=MAX_TOOLS,
        description="Tool definitions; at most 128, with names unique among them, and 64 KiB serialized.",
    ),
    bounded_json(64 * 1024),
    DocumentedAs(_tool_definitions),
]
FLOW_MAX_BYTES = 256 * 1024
_flow_size = bounded_json(FLOW_MAX_BYTES)


def _flow_kind(value: Any) -> str | None:
    return "object" if isinstance(value, dict) else "text" if isinstance(value, str) else None


Flow = Annotated[
    Annotated[dict[str, Any], Tag("object"), DocumentedAs(_flow_document)] | Annotated[str, Tag("text")],
    Discriminator(
        _flow_kind,
        custom_error_type="flow_type",
        custom_error_message="must be a JSON object (the flow), or YAML text of one",
    ),
    Field(
        description="The scripted flow; FLOW mode only. A JSON object, or the same document as YAML text (stored, "
        "and read back, as the JSON object it describes); at most 256 KiB. Checked on creation: a flow that "
        "cannot run is a 422 naming the path of the problem (docs/flows.md has the format).",
        examples=[
            {
                "start": "ask_name",
                "nodes": {
                    "ask_name": {"type": "ask", "text": "Hi! What's your name?", "var": "name", "next": "bye"},
                    "bye": {"type": "end", "message": "Nice to meet you, {{name}}."},
                },
            }
        ],
    ),
    _flow_size,
]
Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[int, Field(ge=1, le=2_147_483_647)]
SMS_MAX_TOKENS = (
    "The reply's max_tokens on threads whose channel is sms; applies instead of max_tokens there. "
    "Null: max_tokens applies on SMS too."
)
SMS_TEMPERATURE = (
    "The temperature on threads whose channel is sms; applies instead of temperature there. "
    "Null: temperature applies on SMS too."
)
VersionSettings = Annotated[
    dict[str, Any],
    Field(description="Further runtime settings (a JSON object, at most 16 KiB serialized)."),
    bounded_json(16 * 1024),
]
FAILURE_REPLY = (
    "What the end user is sent when a run fails for good (the model server down, its answers unusable), e.g. "
    "'Sorry, something went wrong; a person will get back to you'. Null: nothing is sent. The failure itself "
    "is for operators only: the run's error, a run.failed event, a note in the thread."
)
FAILURE_HANDOFF = (
    "When a run fails for good, hand the thread to a human (active becomes false), as the handoff tool does."
)


class Pricing(InputModel):
    """Prices per million tokens, for the estimated cost in GET /v1/usage."""

    currency: Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")] = "USD"
    input_per_million_tokens: Annotated[float, Field(ge=0, le=1_000_000)]
    output_per_million_tokens: Annotated[float, Field(ge=0, le=1_000_000)]


class PricingRead(OutputModel):
    currency: str
    input_per_million_tokens: float
    output_per_million_tokens: float


def _version_rules(schema: dict[str, Any]) -> None:
    """For the document, what _flow_fits_mode and the endpoints check: FLOW mode needs a flow; PROMPT mode takes
    none and needs a model unless its provider serves one of its own (``local``); whether the provider serves
    that model is checked on creation, against its settings."""
    # Imported when the document is built: the runtime package (threadline.runs) imports this one.
    from threadline.engines.providers.registry import PROVIDERS, needs_model

    named: dict[str, Any] = {"required": ["model"], "properties": {"model": {"type": "string", "minLength": 1}}}
    modelless = [name for name in PROVIDERS if not needs_model(name)]
    prompt: dict[str, Any] = {"properties": {"flow": {"type": "null"}}}
    if modelless:
        prompt |= {"if": {"required": ["provider"], "properties": {"provider": {"enum": modelless}}}, "else": named}
    else:
        prompt |= {"allOf": [named]}
    schema.update(
        {
            "if": {"properties": {"mode": {"const": AgentMode.FLOW.value}}},
            "then": {"required": ["flow"], "properties": {"flow": {"not": {"type": "null"}}}},
            "else": prompt,
        }
    )


class AgentVersionSpec(InputModel):
    """One configuration of an agent. Versions are immutable: to change the agent, add a version."""

    model_config = ConfigDict(json_schema_extra=_version_rules)

    name: VersionName | None = Field(default=None, description="Defaults to 'v<number>'.")
    mode: AgentMode
    provider: Provider | None = None
    model: ModelName | None = None
    system_prompt: Annotated[str, Field(max_length=100_000)] | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    sms_max_tokens: MaxTokens | None = Field(default=None, description=SMS_MAX_TOKENS)
    sms_temperature: Temperature | None = Field(default=None, description=SMS_TEMPERATURE)
    tools: Tools = Field(default_factory=list)
    flow: Flow | None = Field(default=None, validate_default=True)
    discard_inbound: bool = Field(default=False, description="Store inbound messages without answering them.")
    settings: VersionSettings = Field(default_factory=dict)
    failure_reply: Annotated[str, Field(min_length=1, max_length=2000, pattern=NOT_BLANK)] | None = Field(
        default=None, description=FAILURE_REPLY
    )
    failure_handoff: bool = Field(default=False, description=FAILURE_HANDOFF)
    pricing: Pricing | None = Field(default=None, description="Prices per million tokens (estimated cost in usage).")

    @field_validator("flow")
    @classmethod
    def _flow_fits_mode(cls, flow: dict[str, Any] | str | None, info: ValidationInfo) -> dict[str, Any] | None:
        mode = info.data.get("mode")
        if mode is AgentMode.FLOW and flow is None:
            raise PydanticCustomError("flow_required", "is required in FLOW mode (a JSON object, or YAML text)")
        if mode is AgentMode.PROMPT and flow is not None:
            raise PydanticCustomError("flow_not_allowed", "must be null or left out in PROMPT mode")
        if mode is not AgentMode.FLOW or flow is None:
            return None
        # Imported here: the runtime package (threadline.runs) imports the domain packages, this one among them.
        from threadline.engines.flows.schema import FlowError, parse_flow_document

        try:
            document, _ = parse_flow_document(flow)
        except FlowError as exc:
            raise PydanticCustomError("flow_invalid", "{problems}", {"problems": str(exc)}) from None
        if isinstance(flow, str):
            # YAML is terse: the object it describes may be larger than its text.
            cast(Callable[[Any], Any], _flow_size.func)(document)
        return document

    @field_validator("tools")
    @classmethod
    def _tools_are_known(cls, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from pydantic import ValidationError

        from threadline.engines.tools import parse_tools

        if any(isinstance(t, dict) and "headers_encrypted" in t for t in tools):
            raise PydanticCustomError("tools_invalid", "headers_encrypted is set by the server; send headers")
        try:
            parsed = parse_tools(tools)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problem = {"where": where, "msg": first["msg"]}
            raise PydanticCustomError("tools_invalid", "{where}: {msg}", problem) from None
        except ValueError as exc:
            raise PydanticCustomError("tools_invalid", "{msg}", {"msg": str(exc)}) from None
        return [tool.model_dump(mode="json") for tool in parsed]


class AgentVersionCreate(AgentVersionSpec):
    activate: bool = Field(default=True, description="Make the new version the agent's current one.")


class AgentCreate(InputModel):
    name: AgentName
    description: Description | None = None
    type: AgentType = AgentType.TEXT
    metadata: Metadata = Field(default_factory=dict)
    version: AgentVersionSpec | None = Field(
        default=None, description="The first version's configuration: it becomes version 1, and current."
    )


class AgentUpdate(InputModel):
    name: Annotated[AgentName | None, NotNull] = None
    description: Description | None = None
    type: Annotated[AgentType | None, NotNull] = None
    metadata: Annotated[Metadata | None, NotNull] = None
    current_version_id: IdRef | None = Field(
        default=None,
        description="Roll back or forward to an existing version of this agent; null leaves it without one.",
    )


class AgentVersionRead(OutputModel):
    object: Literal["agent_version"] = "agent_version"
    id: str
    agent_id: str
    number: int
    name: str
    mode: AgentMode
    provider: str | None
    model: str | None
    system_prompt: str | None
    temperature: float | None
    max_tokens: int | None
    sms_max_tokens: int | None = Field(description=SMS_MAX_TOKENS)
    sms_temperature: float | None = Field(description=SMS_TEMPERATURE)
    tools: list[dict[str, Any]]
    flow: dict[str, Any] | None
    discard_inbound: bool
    settings: dict[str, Any]
    failure_reply: str | None = Field(description=FAILURE_REPLY)
    failure_handoff: bool = Field(description=FAILURE_HANDOFF)
    pricing: PricingRead | None
    created_at: datetime

    @classmethod
    def of(cls, version: AgentVersion, *, agent: Agent) -> AgentVersionRead:
        return cls(
            id=str(version.public_id),
            agent_id=str(agent.public_id),
            number=version.number,
            name=version.name,
            mode=version.mode,
            provider=version.provider,
            model=version.model,
            system_prompt=version.system_prompt,
            temperature=version.temperature,
            max_tokens=version.max_tokens,
            sms_max_tokens=version.sms_max_tokens,
            sms_temperature=version.sms_temperature,
            tools=redacted_tools(version.tools),
            flow=version.flow,
            discard_inbound=version.discard_inbound,
            settings=version.settings,
            failure_reply=version.failure_reply,
            failure_handoff=version.failure_handoff,
            pricing=PricingRead(**version.pricing) if version.pricing else None,
            created_at=version.created_at,
        )


class AgentRead(OutputModel):
    object: Literal["agent"] = "agent"
    id: str
    name: str
    description: str | None
    type: AgentType
    current_version: AgentVersionRead | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, agent: Agent, current_version: AgentVersion | None) -> AgentRead:
        return cls(
            id=str(agent.public_id),
            name=agent.name,
            description=agent.description,
            type=agent.type,
            current_version=AgentVersionRead.of(current_version, agent=agent) if current_version else None,
            metadata=agent.metadata_,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )


AgentPage = ListPage[AgentRead]
AgentVersionPage = ListPage[AgentVersionRead]


REDACTED = "[redacted]"


def redacted_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools as the API shows them: HTTP tools' header values are write-only (they carry the credentials
    of the business's own API), so a response never repeats them."""
    shown = []
    for tool in tools:
        headers = tool.get("headers")
        if isinstance(headers, dict) and headers:
            tool = {**tool, "headers": dict.fromkeys(headers, REDACTED)}
        shown.append({k: v for k, v in tool.items() if k != "headers_encrypted"})
    return shown
