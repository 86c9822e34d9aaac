from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from threadline.kit.schemas import InputModel, ListPage, OutputModel
from threadline.models import ApiKey
from threadline.models.enums import Scope


class ApiKeyCreate(InputModel):
    name: Annotated[str, Field(max_length=200)] = ""
    scopes: Annotated[list[Scope], Field(min_length=1)] = [Scope.READ, Scope.WRITE]

    @field_validator("scopes")
    @classmethod
    def _dedupe(cls, scopes: list[Scope]) -> list[Scope]:
        return list(dict.fromkeys(scopes))


class ApiKeyRead(OutputModel):
    object: Literal["api_key"] = "api_key"
    id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to tell keys apart; never the key.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyRead:
        return cls(
            id=str(key.public_id),
            name=key.name,
            prefix=key.prefix,
            scopes=[Scope(s) for s in key.scopes],
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret. Shown once, here; only its hash is stored.")


ApiKeyPage = ListPage[ApiKeyRead]
