from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from threadline.audit.actions import AuditAction
from threadline.kit.schemas import ListPage, OutputModel
from threadline.models import AuditActorType, AuditEvent


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What GET /v1/audit_events narrows by. ``action`` is an action or a family (``api_key.*``); a
    ``target_id`` that names nothing here matches nothing. ``since`` is inclusive, ``until`` exclusive."""

    action: str | None = None
    target_id: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditActor(OutputModel):
    type: AuditActorType
    id: str | None = Field(
        description="The API key's or agent's id; for `cli`, the operating-system user who ran the command; "
        "null for `system`."
    )
    key_prefix: str | None = Field(description="For `api_key`: the key's first characters (never the key).")


class AuditTarget(OutputModel):
    type: str = Field(description="The kind of resource acted on: the part of `action` before the dot.")
    id: str | None


class AuditEventRead(OutputModel):
    object: Literal["audit_event"] = "audit_event"
    id: str
    action: AuditAction
    occurred_at: datetime
    actor: AuditActor
    target: AuditTarget
    request_id: str | None = Field(
        description="The id (`X-Request-Id`) of the request it was done in, or of the one that started the "
        "background work that did it; null when there is none (the CLI)."
    )
    client_address: str | None = Field(description="For `api_key`: the address the request came from.")
    details: dict[str, Any] = Field(
        description="Names and flags that say more (an update's changed `fields`, a new key's `scopes`); never "
        "a secret, never message content."
    )

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventRead:
        return cls(
            id=str(event.public_id),
            action=AuditAction(event.action),
            occurred_at=event.occurred_at,
            actor=AuditActor(type=event.actor_type, id=event.actor_id, key_prefix=event.actor_key_prefix),
            target=AuditTarget(
                type=event.target_type, id=str(event.target_id) if event.target_id is not None else None
            ),
            request_id=event.request_id,
            client_address=event.client_address,
            details=dict(event.details or {}),
        )


AuditEventPage = ListPage[AuditEventRead]
