"""Webhook endpoints, their delivery log, replay and disabling. Services flush; the caller commits.

Deliveries are created by the fan-out sink (webhooks.sink) in the transaction that records the events,
and attempted by ``webhooks.deliver`` jobs (webhooks.delivery): one job per attempt, each enqueuing the
next on the retry schedule. Lock order, wherever both are written: the endpoint row, then deliveries.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit import service as audit
from threadline.audit.actions import AuditAction
from threadline.config import Settings
from threadline.errors import Conflict, ValidationFailed
from threadline.events import service as events
from threadline.events.types import EventType
from threadline.jobs.service import enqueue
from threadline.kit.clock import utcnow
from threadline.kit.pagination import Order, Page, PageRequest
from threadline.kit.secrets import secret_box
from threadline.kit.ssrf import BadURL, ForbiddenURL, check_url
from threadline.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from threadline.models.enums import WebhookDeliveryStatus
from threadline.webhooks.repository import WebhookRepository
from threadline.webhooks.schemas import (
    REPLAY_MAX_EVENTS,
    WebhookCreate,
    WebhookRead,
    WebhookReplayResult,
    WebhookUpdate,
)

log = structlog.get_logger(__name__)

DELIVER_KIND = "webhooks.deliver"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# After a rotation the old secret signs too (a second signature) for this long, so receivers can switch.
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
DISABLED_ERROR = "endpoint disabled"


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes: the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def enqueue_attempt(
    session: AsyncSession, *, workspace_id: int, delivery_id: int, series: int, run_at: datetime | None = None
) -> None:
    await enqueue(
        session,
        kind=DELIVER_KIND,
        payload={"delivery_id": delivery_id, "series": series},
        workspace_id=workspace_id,
        run_at=run_at,
    )


async def _check_url(url: str, settings: Settings) -> None:
    try:
        await check_url(
            url,
            allow_private=settings.webhooks.allow_private_urls,
            resolve_timeout_s=min(1.0, settings.webhooks.timeout_s),
        )
    except ForbiddenURL as exc:
        raise ValidationFailed(f"url: {exc}", param="url", code="url_not_allowed") from None
    except BadURL as exc:
        raise ValidationFailed(f"url: {exc}", param="url", code="invalid_url") from None


# ---------------------------------------------------------------------------------------------- endpoints


async def create_webhook(
    session: AsyncSession, *, workspace_id: int, data: WebhookCreate, settings: Settings, actor: audit.Actor
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (the only time the secret is returned)."""
    await _check_url(data.url, settings)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        workspace_id=workspace_id,
        url=data.url,
        description=data.description,
        event_types=list(data.event_types),
        enabled=data.enabled,
        secret_ciphertext=secret_box(settings).encrypt(secret),
        consecutive_failures=0,
    )
    session.add(endpoint)
    await session.flush()
    # Not the URL: a receiver may authenticate with a token in it.
    await audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=AuditAction.WEBHOOK_CREATED,
        target_id=endpoint.public_id,
        details={"event_types": list(endpoint.event_types), "enabled": endpoint.enabled},
    )
    return endpoint, secret


async def get_webhook(session: AsyncSession, *, workspace_id: int, webhook_id: str) -> WebhookEndpoint:
    return await WebhookRepository(session, workspace_id).get_endpoint(webhook_id)


async def list_webhooks(
    session: AsyncSession, *, workspace_id: int, page: PageRequest, enabled: bool | None = None
) -> Page[WebhookEndpoint]:
    return await WebhookRepository(session, workspace_id).page_endpoints(page, enabled=enabled)


async def update_webhook(
    session: AsyncSession,
    *,
    workspace_id: int,
    webhook_id: str,
    data: WebhookUpdate,
    settings: Settings,
    actor: audit.Actor,
) -> WebhookEndpoint:
    """Change the fields present in ``data``. Disabling fails the endpoint's pending deliveries;
    re-enabling clears the disabled reason and the run of failures. The audit log records the names of the
    fields that changed."""
    repo = WebhookRepository(session, workspace_id)
    endpoint = await repo.get_endpoint(webhook_id)
    changes = data.model_dump(include=data.model_fields_set)
    if "url" in changes:
        await _check_url(changes["url"], settings)
    changed = [name for name, value in changes.items() if getattr(endpoint, name) != value]
    enabled = changes.pop("enabled", None)
    for field, value in changes.items():
        setattr(endpoint, field, value)
    if enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = None
        endpoint.consecutive_failures = 0
        endpoint.failing_since = None
    await session.flush()
    if enabled is False and endpoint.enabled:
        await disable_endpoint(session, repo, endpoint, reason="disabled through the API", automatic=False)
    if changed:
        await audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=AuditAction.WEBHOOK_UPDATED,
            target_id=endpoint.public_id,
            details={"fields": changed},
        )
    return endpoint


async def delete_webhook(session: AsyncSession, *, workspace_id: int, webhook_id: str, actor: audit.Actor) -> None:
    """Deletes the endpoint with its delivery log; jobs still queued for it find nothing and do nothing."""
    repo = WebhookRepository(session, workspace_id)
    endpoint = await repo.get_endpoint(webhook_id)
    public_id = endpoint.public_id
    await repo.delete_endpoint(endpoint)
    await audit.record(
        session, workspace_id=workspace_id, actor=actor, action=AuditAction.WEBHOOK_DELETED, target_id=public_id
    )


async def rotate_secret(
    session: AsyncSession, *, workspace_id: int, webhook_id: str, settings: Settings, actor: audit.Actor
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret; the previous one keeps signing alongside it for ``PREVIOUS_SECRET_GRACE``."""
    endpoint = await WebhookRepository(session, workspace_id).get_endpoint(webhook_id)
    secret = new_secret()
    endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
    endpoint.previous_secret_expires_at = utcnow() + PREVIOUS_SECRET_GRACE
    endpoint.secret_ciphertext = secret_box(settings).encrypt(secret)
    await session.flush()
    await audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=AuditAction.WEBHOOK_SECRET_ROTATED,
        target_id=endpoint.public_id,
    )
    return endpoint, secret


async def disable_endpoint(
    session: AsyncSession, repo: WebhookRepository, endpoint: WebhookEndpoint, *, reason: str, automatic: bool
) -> None:
    """Disable ``endpoint`` (held by this transaction) and fail its pending deliveries. An automatic
    disabling (a run of failures) is announced with a ``webhook_endpoint.disabled`` event, delivered to the
    workspace's other endpoints that want it; a client that disabled one itself needs no telling."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:500]
    await session.flush()
    failed = await repo.fail_pending(endpoint.id, error=DISABLED_ERROR)
    if automatic:
        await audit.record(
            session,
            workspace_id=repo.workspace_id,
            actor=audit.Actor.system(),
            action=AuditAction.WEBHOOK_DISABLED,
            target_id=endpoint.public_id,
            details={"consecutive_failures": endpoint.consecutive_failures},
        )
        events.record(
            session,
            workspace_id=repo.workspace_id,
            type=EventType.WEBHOOK_ENDPOINT_DISABLED,
            data=WebhookRead.of(endpoint),
        )
    log.warning(
        "webhook.disabled",
        webhook_id=str(endpoint.public_id),
        automatic=automatic,
        reason=reason,
        pending_failed=failed,
    )


# ---------------------------------------------------------------------------------------------- deliveries


async def list_deliveries(
    session: AsyncSession,
    *,
    workspace_id: int,
    webhook_id: str,
    limit: int,
    order: Order,
    after: str | None = None,
    before: str | None = None,
    status: WebhookDeliveryStatus | None = None,
) -> tuple[WebhookEndpoint, Page[WebhookDelivery]]:
    """A page of the endpoint's deliveries; ``after``/``before`` must be deliveries of this endpoint."""
    repo = WebhookRepository(session, workspace_id)
    endpoint = await repo.get_endpoint(webhook_id)
    page = PageRequest(
        limit=limit,
        order=order,
        after=await repo.delivery_cursor(endpoint, after, param="after"),
        before=await repo.delivery_cursor(endpoint, before, param="before"),
    )
    return endpoint, await repo.page_deliveries(endpoint, page, status=status)


async def get_delivery(
    session: AsyncSession, *, workspace_id: int, webhook_id: str, delivery_id: str
) -> tuple[WebhookEndpoint, WebhookDelivery, list[WebhookAttempt]]:
    repo = WebhookRepository(session, workspace_id)
    endpoint = await repo.get_endpoint(webhook_id)
    delivery = await repo.get_delivery(endpoint, delivery_id)
    return endpoint, delivery, await repo.attempts(delivery)


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict(
            f"webhook '{endpoint.public_id}' is disabled: enable it (PATCH enabled=true) before replaying",
            code="webhook_disabled",
        )


async def replay_delivery(
    session: AsyncSession, *, workspace_id: int, webhook_id: str, delivery_id: str
) -> tuple[WebhookEndpoint, WebhookDelivery]:
    """Start a new series of attempts (the whole retry schedule), the first due now, whatever the
    delivery's status; an attempt still due from an earlier series is dropped."""
    repo = WebhookRepository(session, workspace_id)
    endpoint = await repo.get_endpoint(webhook_id)
    _require_enabled(endpoint)
    delivery = await repo.get_delivery(endpoint, delivery_id)
    if not await repo.event_exists(delivery.event_id):
        raise Conflict(
            f"the event of delivery '{delivery_id}' is past its retention and can no longer be sent",
            code="event_expired",
        )
    [(key, series)] = await repo.restart_deliveries([delivery.id], now=utcnow())
    await enqueue_attempt(session, workspace_id=workspace_id, delivery_id=key, series=series)
    refreshed = await repo.delivery_by_key(key)
    assert refreshed is not None
    return endpoint, refreshed


async def replay_since(
    session: AsyncSession, *, workspace_id: int, webhook_id: str, after_seq: int
) -> WebhookReplayResult:
    """Queue the retained events after ``after_seq`` that the endpoint subscribes to (at most
    ``REPLAY_MAX_EVENTS``, oldest first): a new attempt series on the endpoint's delivery of each, or a new
    delivery for events it never had (created before it, or while it did not subscribe)."""
    repo = WebhookRepository(session, workspace_id)
    endpoint = await repo.get_endpoint(webhook_id)
    _require_enabled(endpoint)
    rows = list(await repo.events_after(after_seq, patterns=endpoint.event_types, limit=REPLAY_MAX_EVENTS + 1))
    has_more = len(rows) > REPLAY_MAX_EVENTS
    rows = rows[:REPLAY_MAX_EVENTS]
    existing = await repo.deliveries_for_events(endpoint.id, [r.public_id for r in rows])
    restarted = await repo.restart_deliveries(list(existing.values()), now=utcnow())
    new_ids = await repo.insert_deliveries(
        [
            {"endpoint_id": endpoint.id, "event_id": r.public_id, "event_seq": r.seq, "event_type": r.type}
            for r in rows
            if r.public_id not in existing
        ]
    )
    for key, series in [*restarted, *((i, 0) for i in new_ids)]:
        await enqueue_attempt(session, workspace_id=workspace_id, delivery_id=key, series=series)
    return WebhookReplayResult(
        queued=len(restarted) + len(new_ids), last_seq=rows[-1].seq if rows else None, has_more=has_more
    )
