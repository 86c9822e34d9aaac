from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import JsonDict, JsonValue
from pydantic_core import PydanticCustomError

from threadline.kit.schemas import InputModel, ListPage, Metadata, NotNull, OutputModel
from threadline.models import EndUser
from threadline.models.enums import ChannelType

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # [0-9], not \d: Python's \d takes every script's digits
PHONE_CHANNELS = frozenset({ChannelType.SMS, ChannelType.WHATSAPP})

Address = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="How the channel reaches the end user: an E.164 phone number (+14155550123) for sms "
        "and whatsapp; any string for api.",
    ),
]
DisplayName = Annotated[str, Field(max_length=200)]
Info = Annotated[str, Field(max_length=10_000, description="Free text about the end user, for operators.")]


def address_problem(channel: ChannelType, address: str | None) -> str | None:
    """Why ``address`` cannot reach an end user on ``channel``, or None when it can."""
    if channel not in PHONE_CHANNELS:
        return None
    if address is None:
        return f"is required for the {channel.value} channel (an E.164 phone number such as +14155550123)"
    if not E164.match(address):
        return f"must be an E.164 phone number such as +14155550123 for the {channel.value} channel"
    return None


_PHONE_CHANNEL_NAMES: list[JsonValue] = [c.value for c in sorted(PHONE_CHANNELS)]
_PHONE_ADDRESS_RULE: JsonDict = {
    "if": {"required": ["channel"], "properties": {"channel": {"enum": _PHONE_CHANNEL_NAMES}}},
    "then": {"required": ["address"], "properties": {"address": {"type": "string", "pattern": E164.pattern}}},
}


class EndUserCreate(InputModel):
    # What the address validator checks, in the document: on sms and whatsapp, an E.164 number is required.
    model_config = ConfigDict(json_schema_extra=_PHONE_ADDRESS_RULE)

    display_name: DisplayName = ""
    channel: ChannelType = ChannelType.API
    address: Address | None = Field(default=None, validate_default=True)
    info: Info | None = None
    metadata: Metadata = Field(default_factory=dict)

    @field_validator("address")
    @classmethod
    def _address_fits_channel(cls, address: str | None, info: ValidationInfo) -> str | None:
        channel = info.data.get("channel")
        if channel is not None and (problem := address_problem(channel, address)) is not None:
            raise PydanticCustomError("address_invalid", problem)
        return address


class EndUserUpdate(InputModel):
    """Only the fields present change; the resulting channel and address are checked together."""

    display_name: Annotated[DisplayName | None, NotNull] = None
    channel: Annotated[ChannelType | None, NotNull] = None
    address: Address | None = None
    info: Info | None = None
    metadata: Annotated[Metadata | None, NotNull] = None


class EndUserRead(OutputModel):
    object: Literal["end_user"] = "end_user"
    id: str
    display_name: str
    channel: ChannelType
    address: str | None
    info: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, end_user: EndUser) -> EndUserRead:
        return cls(
            id=str(end_user.public_id),
            display_name=end_user.display_name,
            channel=end_user.channel,
            address=end_user.address,
            info=end_user.info,
            metadata=end_user.metadata_,
            created_at=end_user.created_at,
            updated_at=end_user.updated_at,
        )


EndUserPage = ListPage[EndUserRead]
