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
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

T = TypeVar("T")

METADATA_MAX_BYTES = 16 * 1024


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


StorableStr = Annotated[str, AfterValidator(_check_storable)]
"""For query parameters compared in SQL: a string PostgreSQL can take (no NUL, valid Unicode)."""


class InputModel(BaseModel):
    """Native inputs refuse unknown fields, so a typo is a 422 that names it instead of a silent no-op.

    Every field is also checked to be storable (no NUL, valid Unicode, bounded nesting): what the
    database would refuse is a 422 naming the field, not a 500.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Nested input models (the only BaseModels here) have run this check on their own fields.
        if isinstance(value, str | dict | list):
            return _check_storable(value)
        return value


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
