"""Pydantic building blocks shared by every native schema."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class InputModel(BaseModel):
    """Native inputs refuse unknown fields, so a typo is a 422 that names it instead of a silent no-op."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=False)


class ListPage(OutputModel, Generic[T]):
    """The list envelope of every /v1 collection."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


Metadata = Annotated[
    dict[str, Any],
    Field(description="Free-form JSON object kept with the resource; at most 16 KiB serialized."),
]
