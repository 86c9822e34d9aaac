from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from threadline.audit.deps import request_actor
from threadline.models import WebhookEndpoint
from threadline.models.enums import WebhookDeliveryStatus
from threadline.web.deps import ReadAuth, SessionDep, SettingsDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope
from threadline.webhooks import service
from threadline.webhooks.repository import WebhookRepository
from threadline.webhooks.schemas import (
    REPLAY_MAX_EVENTS,
    WebhookAttemptRead,
    WebhookCreate,
    WebhookDeliveryDetail,
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookPage,
    WebhookRead,
    WebhookReplay,
    WebhookReplayResult,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=201,
    response_model=WebhookWithSecret,
    summary="Create a webhook endpoint (its secret is shown once)",
    description="The answer carries the signing `secret`, never shown again. A URL into loopback, private or "
    "link-local networks is a 422 (`url_not_allowed`) unless the server allows it.",
)
async def create_webhook(
    body: WebhookCreate, request: Request, settings: SettingsDep, session: SessionDep, auth: WriteAuth
) -> WebhookWithSecret:
    endpoint, secret = await service.create_webhook(
        session, workspace_id=auth.workspace_id, data=body, settings=settings, actor=request_actor(auth, request)
    )
    return WebhookWithSecret.with_secret(endpoint, secret)


@router.get("", response_model=WebhookPage, summary="List webhook endpoints")
async def list_webhooks(
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    enabled: Annotated[bool | None, Query(description="Only enabled (true) or disabled (false) endpoints.")] = None,
) -> WebhookPage:
    page = await query.resolve(WebhookRepository(session, auth.workspace_id), WebhookEndpoint, label="webhook")
    result = await service.list_webhooks(session, workspace_id=auth.workspace_id, page=page, enabled=enabled)
    return WebhookPage(**list_envelope(result, WebhookRead.of))


@router.get("/{webhook_id}", response_model=WebhookRead, summary="Get a webhook endpoint")
async def get_webhook(webhook_id: str, session: SessionDep, auth: ReadAuth) -> WebhookRead:
    return WebhookRead.of(await service.get_webhook(session, workspace_id=auth.workspace_id, webhook_id=webhook_id))


@router.patch(
    "/{webhook_id}",
    response_model=WebhookRead,
    summary="Update a webhook endpoint",
    description="`enabled: false` fails its pending deliveries; `enabled: true` re-enables a disabled endpoint and "
    "clears its run of failures (replay what it missed with `POST /v1/webhooks/{id}/replay`).",
)
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, request: Request, settings: SettingsDep, session: SessionDep, auth: WriteAuth
) -> WebhookRead:
    endpoint = await service.update_webhook(
        session,
        workspace_id=auth.workspace_id,
        webhook_id=webhook_id,
        data=body,
        settings=settings,
        actor=request_actor(auth, request),
    )
    return WebhookRead.of(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint and its delivery log",
)
async def delete_webhook(webhook_id: str, request: Request, session: SessionDep, auth: WriteAuth) -> Response:
    await service.delete_webhook(
        session, workspace_id=auth.workspace_id, webhook_id=webhook_id, actor=request_actor(auth, request)
    )
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate_secret",
    response_model=WebhookWithSecret,
    summary="Replace the signing secret (the new one is shown once)",
    description="For 24 hours the previous secret signs too: deliveries carry two signatures, so receivers can "
    "switch without missing any.",
)
async def rotate_secret(
    webhook_id: str, request: Request, settings: SettingsDep, session: SessionDep, auth: WriteAuth
) -> WebhookWithSecret:
    endpoint, secret = await service.rotate_secret(
        session,
        workspace_id=auth.workspace_id,
        webhook_id=webhook_id,
        settings=settings,
        actor=request_actor(auth, request),
    )
    return WebhookWithSecret.with_secret(endpoint, secret)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=WebhookDeliveryPage,
    summary="List a webhook endpoint's deliveries",
    description="One delivery per event sent to this endpoint; `order=desc` lists the newest first.",
)
async def list_deliveries(
    webhook_id: str,
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    status: Annotated[WebhookDeliveryStatus | None, Query(description="Only deliveries in this status.")] = None,
) -> WebhookDeliveryPage:
    endpoint, page = await service.list_deliveries(
        session,
        workspace_id=auth.workspace_id,
        webhook_id=webhook_id,
        limit=query.limit,
        order=query.order,
        after=query.after,
        before=query.before,
        status=status,
    )
    webhook = str(endpoint.public_id)
    return WebhookDeliveryPage(**list_envelope(page, lambda d: WebhookDeliveryRead.of(d, webhook)))


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=WebhookDeliveryDetail,
    summary="Get a delivery with its attempts",
)
async def get_delivery(webhook_id: str, delivery_id: str, session: SessionDep, auth: ReadAuth) -> WebhookDeliveryDetail:
    endpoint, delivery, attempts = await service.get_delivery(
        session, workspace_id=auth.workspace_id, webhook_id=webhook_id, delivery_id=delivery_id
    )
    read = WebhookDeliveryRead.of(delivery, str(endpoint.public_id))
    return WebhookDeliveryDetail(**read.model_dump(), attempts=[WebhookAttemptRead.of(a) for a in attempts])


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=WebhookDeliveryRead,
    summary="Send a delivery again",
    description="Starts a new series of attempts (the whole retry schedule), the first one now, whatever the "
    "delivery's status. 409 when the endpoint is disabled or the event is past its retention.",
)
async def replay_delivery(
    webhook_id: str, delivery_id: str, session: SessionDep, auth: WriteAuth
) -> WebhookDeliveryRead:
    endpoint, delivery = await service.replay_delivery(
        session, workspace_id=auth.workspace_id, webhook_id=webhook_id, delivery_id=delivery_id
    )
    return WebhookDeliveryRead.of(delivery, str(endpoint.public_id))


@router.post(
    "/{webhook_id}/replay",
    status_code=202,
    response_model=WebhookReplayResult,
    summary="Send every retained event after a seq again",
    description=f"Queues the retained events with seq > `after_seq` that the endpoint subscribes to, oldest first, "
    f"at most {REPLAY_MAX_EVENTS} per call: call again with `after_seq` = `last_seq` while `has_more`. Events "
    "the endpoint already had get a new series of attempts; others get a new delivery. 409 when it is disabled.",
)
async def replay_since(
    webhook_id: str, body: WebhookReplay, session: SessionDep, auth: WriteAuth
) -> WebhookReplayResult:
    return await service.replay_since(
        session, workspace_id=auth.workspace_id, webhook_id=webhook_id, after_seq=body.after_seq
    )
