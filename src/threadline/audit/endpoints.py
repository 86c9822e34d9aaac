from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from threadline.audit import service
from threadline.audit.actions import AuditAction, valid_filter
from threadline.audit.repository import AuditRepository
from threadline.audit.schemas import AuditEventPage, AuditEventRead, AuditFilters
from threadline.errors import ValidationFailed
from threadline.kit.schemas import StorableStr, Timestamp
from threadline.models import AuditEvent
from threadline.web.deps import AdminAuth, SessionDep
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/audit_events", tags=["audit events"])

# What valid_filter accepts: each family of actions (`api_key.*`), then each action.
ACTION_FILTERS = [*dict.fromkeys(f"{a.target_type}.*" for a in AuditAction), *(a.value for a in AuditAction)]
ActionFilter = Annotated[str, Field(max_length=64, json_schema_extra={"enum": ACTION_FILTERS})]


async def audit_filters(
    action: Annotated[
        ActionFilter | None,
        Query(description="Only this action (`api_key.revoked`) or family of actions (`api_key.*`)."),
    ] = None,
    target_id: Annotated[str | None, Query(max_length=64, description="Only actions on this resource.")] = None,
    actor_id: Annotated[
        StorableStr | None, Query(max_length=200, description="Only actions by this API key, agent or CLI user.")
    ] = None,
    since: Annotated[
        Timestamp | None, Query(description="Only actions at or after this time (RFC 3339, with offset).")
    ] = None,
    until: Annotated[
        Timestamp | None, Query(description="Only actions before this time (RFC 3339, with offset).")
    ] = None,
) -> AuditFilters:
    if action is not None and not valid_filter(action):
        raise ValidationFailed(f"action: unknown action '{action}'", param="action")
    return AuditFilters(action=action, target_id=target_id, actor_id=actor_id, since=since, until=until)


@router.get(
    "",
    response_model=AuditEventPage,
    summary="List the audit log (admin)",
    description="Administrative actions of the workspace (API keys, integrations, webhooks, handoffs, blocks, "
    "exports and erasures): who, what, when. A list like any other; `order=desc` for the newest first.",
)
async def list_audit_events(
    session: SessionDep,
    auth: AdminAuth,
    query: ListQueryDep,
    filters: Annotated[AuditFilters, Depends(audit_filters)],
) -> AuditEventPage:
    page = await query.resolve(AuditRepository(session, auth.workspace_id), AuditEvent, label="audit event")
    result = await service.list_events(session, workspace_id=auth.workspace_id, page=page, filters=filters)
    return AuditEventPage(**list_envelope(result, AuditEventRead.of))


@router.get("/{audit_event_id}", response_model=AuditEventRead, summary="Get an audit event (admin)")
async def get_audit_event(audit_event_id: str, session: SessionDep, auth: AdminAuth) -> AuditEventRead:
    event = await service.get_event(session, workspace_id=auth.workspace_id, audit_event_id=audit_event_id)
    return AuditEventRead.of(event)
