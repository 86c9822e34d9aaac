"""Pydantic building blocks shared by every native schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from typing_extensions import TypeAliasType

T = TypeVar("T")

METADATA_MAX_BYTES = 16 * 1024

MAX_JSON_INT = 2**53 - 1
"""The largest integer every JSON parser reads exactly (past it, doubles round): the bound of counters that
clients send back, such as event seqs."""


MAX_JSON_DEPTH = 64


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def storage_problem(value: Any) -> str | None:
    """Why ``value`` (a string, or JSON made of dicts, lists and scalars) cannot be stored in both
    databases, or None. PostgreSQL refuses NUL in text and JSONB and any invalid UTF-8; both refuse
    what nests deeper than the JSON encoder's recursion allows."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if (problem := _text_problem(item)) is not None:
                return problem
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return f"nests deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(item, dict):
                for key in item:
                    if isinstance(key, str) and (problem := _text_problem(key)) is not None:
                        return f"has a key that {problem}"
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def _check_storable(value: Any) -> Any:
    if (problem := storage_problem(value)) is not None:
        raise PydanticCustomError("unstorable_value", problem)
    return value


SPACES = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""The white space of patterns, for a character class: spelled out, as regex engines differ on what ``\\s``
takes (U+0085, U+FEFF) and the document's readers must take exactly what the server does."""

NOT_BLANK = rf"[^{SPACES}]"
"""The pattern of a text with something other than white space in it."""

NO_NUL = r"^[^\x00]*$"
"""The JSON Schema pattern of text the databases can store (the NUL character is what JSON can carry and
PostgreSQL cannot; unpaired surrogates cannot be sent as UTF-8 at all)."""

StorableStr = Annotated[str, AfterValidator(_check_storable), Field(json_schema_extra={"pattern": NO_NUL})]
"""For query parameters compared in SQL: a string PostgreSQL can take (no NUL, valid Unicode)."""

# Documentation only (inputs are checked by _check_storable): how OpenAPI spells "any JSON value that
# storage_problem accepts", so that a client generated from the document knows what the server refuses.
# mypy cannot follow a TypeAliasType that names itself, hence the ignores.
StorableJson = TypeAliasType(  # type: ignore[misc]
    "StorableJson",
    Union[  # noqa: UP007 - the alias refers to itself by name, which only the Union[...] spelling takes
        Annotated[str, Field(pattern=NO_NUL)],
        int,
        float,
        bool,
        list["StorableJson"],  # type: ignore[misc]
        Annotated[
            dict[str, "StorableJson"],  # type: ignore[misc]
            Field(json_schema_extra={"propertyNames": {"pattern": NO_NUL}}),
        ],
        None,
    ],
)
_STORABLE_JSON = TypeAdapter(StorableJson).core_schema


def _may_match_nul(pattern: str) -> bool:
    """False when ``pattern`` surely matches no text with a NUL in it: anchored at both ends, and no class that
    could take one (``.``, a negated set, ``\\S``...). True when unsure."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return True
    unescaped = pattern.replace("\\\\", "").replace("\\.", "")
    return any(t in unescaped for t in (".", "[^", "\\S", "\\W", "\\D", "\\p", "\\P", "\\x00", "\\0", "\\u0000"))


def _declare_storable(node: Any, storable_json: dict[str, Any]) -> None:
    """Add to a field's JSON Schema what ``_check_storable`` enforces: no NUL in any string or key, and
    free-form JSON values (``storable_json``, a reference) made only of such strings."""
    if not isinstance(node, dict):
        return
    for variants in ("anyOf", "oneOf", "allOf"):
        for variant in node.get(variants, ()):
            _declare_storable(variant, storable_json)
    kind = node.get("type")
    if kind == "string" and not {"enum", "const", "format"} & node.keys():
        if "pattern" not in node:
            node["pattern"] = NO_NUL
        elif _may_match_nul(node["pattern"]):  # one pattern per schema: the field's own stays, NO_NUL joins it
            node.setdefault("allOf", []).append({"pattern": NO_NUL})
    elif kind == "array":
        _declare_storable(node.get("items"), storable_json)
    elif kind == "object":
        node.setdefault("propertyNames", {"pattern": NO_NUL})
        values = node.get("additionalProperties", True)
        if values is True or values == {}:
            node["additionalProperties"] = storable_json
        else:
            _declare_storable(values, storable_json)


def _json_number(value: Any) -> Any:
    # Lax integers would also take True and "5"; 5.0 stays accepted, being an integer in JSON Schema's terms.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _json_scalars(schema: Any, model: type[BaseModel]) -> None:
    """Make the booleans and numbers of ``model``'s core schema take only JSON's own, in place (other models
    nested in it see to theirs)."""
    if isinstance(schema, list):
        for item in schema:
            _json_scalars(item, model)
        return
    if not isinstance(schema, dict) or (schema.get("type") == "model" and schema.get("cls") is not model):
        return
    if schema.get("type") == "function-before" and schema["function"].get("function") is _json_number:
        return  # done already (pydantic may hand back the same schema when the model is nested)
    for key, value in schema.items():
        if key not in ("cls", "metadata", "serialization"):
            _json_scalars(value, model)
    if schema.get("type") in ("bool", "float"):
        schema["strict"] = True
    elif schema.get("type") == "int":
        lax = dict(schema)
        schema.clear()
        schema.update(core_schema.no_info_before_validator_function(_json_number, cast(CoreSchema, lax)))


class InputModel(BaseModel):
    """Native inputs refuse unknown fields, so a typo is a 422 that names it instead of a silent no-op.

    Every field is also checked to be storable (no NUL, valid Unicode, bounded nesting): what the
    database would refuse is a 422 naming the field, not a 500. Booleans and numbers are JSON's own:
    ``0`` for a boolean, ``"true"`` or ``"5"`` are not what the document says, so they are refused, not guessed.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # Not ConfigDict(strict=True): that would also refuse strings for enums and date-times, as FastAPI
        # validates the body already parsed from JSON.
        schema = handler(source)
        _json_scalars(schema, cls)
        return schema

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        storable_json = handler(_STORABLE_JSON)  # a reference; the definition joins the document's components
        for field in handler.resolve_ref_schema(json_schema).get("properties", {}).values():
            _declare_storable(field, storable_json)
        return json_schema

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Nested input models (the only BaseModels here) have run this check on their own fields.
        if isinstance(value, str | dict | list):
            return _check_storable(value)
        return value


class DocumentedAs:
    """For the document only: a field described by the JSON Schema of another type (whose models join the
    document's components) while it is validated as declared. ``source`` gives the type when the document is
    built, so that it may come from a package this one cannot import."""

    def __init__(self, source: Callable[[], Any]) -> None:
        self.source = source

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(TypeAdapter(self.source()).core_schema)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=False)


class ListPage(OutputModel, Generic[T]):
    """The list envelope of every /v1 collection."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON; ValueError for what JSON cannot hold (NaN, Infinity)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def bounded_json(max_bytes: int) -> AfterValidator:
    """A validator refusing JSON values larger than ``max_bytes`` serialized (a 422 naming the field)."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        _check_storable(value)  # first: json_size cannot measure what it cannot encode
        try:
            size = json_size(value)
        except ValueError:
            raise PydanticCustomError("json_invalid", "must be plain JSON (NaN and Infinity are not allowed)") from None
        if size > max_bytes:
            raise PydanticCustomError(
                "json_too_large",
                "must be at most {max_bytes} bytes when serialized as JSON (got {size})",
                {"max_bytes": max_bytes, "size": size},
            )
        return value

    return AfterValidator(check)


class _NotNull:
    """Refuses an explicit ``null`` and leaves ``null`` out of the field's JSON Schema."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._reject_null, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        variants = [v for v in json_schema.get("anyOf", ()) if v != {"type": "null"}]
        if len(variants) == 1:
            rest = {k: v for k, v in json_schema.items() if k != "anyOf"}
            json_schema = {**variants[0], **rest}
        return json_schema

    @staticmethod
    def _reject_null(value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null_not_allowed", "may not be null; leave it out to keep its value")
        return value


NotNull = _NotNull()
"""For PATCH bodies: ``Annotated[X | None, NotNull] = None`` may be left out, but not set to null."""

IdRef = Annotated[str, Field(max_length=64, json_schema_extra={"format": "uuid"})]
"""An id given to name a resource: a UUID (the server takes any string, and one that names nothing is a 4xx
that says so)."""

Metadata = Annotated[
    dict[str, Any],
    bounded_json(METADATA_MAX_BYTES),
    Field(description="Free-form JSON object kept with the resource; at most 16 KiB serialized."),
]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$")


def _rfc3339_only(value: Any) -> Any:
    # Pydantic would also take a number as Unix time; an API that documents date-time should not.
    if isinstance(value, str) and not _RFC3339.match(value):
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 date-time with an offset, e.g. 2025-01-31T12:00:00Z")
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 date-time string")
    return value


def in_utc(value: datetime) -> datetime:
    """``value`` as the same instant in UTC; a PydanticCustomError when that instant is outside what a
    datetime holds (9999-12-31T23:59:59-00:01 is after 9999-12-31T23:59:59.999999Z)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Caught here, with the input's name, rather than as a 500 wherever it is next compared or stored.
        raise PydanticCustomError(
            "datetime_out_of_range",
            "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z once converted to UTC",
        ) from None


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(in_utc)]
"""An input date-time: RFC 3339 with a time zone offset (numbers and naive times are refused), given back in
UTC; an offset that takes it past either end of datetime's range is refused too."""
