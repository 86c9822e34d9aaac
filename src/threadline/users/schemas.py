from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from threadline.kit.schemas import SPACES, InputModel, ListPage, Metadata, NotNull, OutputModel
from threadline.models import User, UserRole

# Loose on purpose: one '@' with something on each side and no spaces; deliverability is not ours to judge.
_NOT_AT_OR_SPACE = rf"[^@{SPACES}]"
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        pattern=rf"^{_NOT_AT_OR_SPACE}+@{_NOT_AT_OR_SPACE}+$",
        examples=["ada@example.com"],
    ),
]
PersonName = Annotated[str, Field(max_length=200)]


RoleField = Field(
    description="What the user may do in the operator console: `admin` also manages keys, "
    "integrations and users; `operator` works the inbox."
)


class UserCreate(InputModel):
    email: Email
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    metadata: Metadata = Field(default_factory=dict)
    role: Annotated[UserRole, RoleField] = UserRole.OPERATOR


class UserUpdate(InputModel):
    email: Annotated[Email | None, NotNull] = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    metadata: Annotated[Metadata | None, NotNull] = None
    role: Annotated[UserRole | None, NotNull, RoleField] = None


class UserRead(OutputModel):
    object: Literal["user"] = "user"
    id: str
    email: str
    first_name: str | None
    last_name: str | None
    metadata: dict[str, Any]
    role: UserRole
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserRead:
        return cls(
            id=str(user.public_id),
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            metadata=user.metadata_,
            role=user.role,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


UserPage = ListPage[UserRead]
