from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from threadline.events.types import event_patterns, valid_pattern
from threadline.kit.schemas import MAX_JSON_INT, InputModel, ListPage, NotNull, OutputModel
from threadline.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from threadline.models.enums import WebhookDeliveryStatus

REPLAY_MAX_EVENTS = 1000
MAX_PATTERNS = 50


def _known_pattern(pattern: str) -> str:
    if not valid_pattern(pattern):
        raise PydanticCustomError(
            "unknown_event_type",
            "unknown event type '{pattern}': use a type such as message.created, a family such as message.*, or *",
            {"pattern": pattern},
        )
    return pattern


def _no_repeats(patterns: list[str]) -> list[str]:
    return list(dict.fromkeys(patterns))


EventPattern = Annotated[
    str, Field(max_length=100, json_schema_extra={"enum": event_patterns()}), AfterValidator(_known_pattern)
]
EventTypes = Annotated[
    list[EventPattern],
    Field(
        min_length=1,
        max_length=MAX_PATTERNS,
        description="Event types delivered: a type (`message.created`), a family (`message.*`) or `*` for all.",
    ),
    AfterValidator(_no_repeats),
]
WebhookURL = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="Where deliveries are POSTed: http(s), no credentials, and (unless the server allows it) "
        "not into loopback, private or link-local networks.",
        json_schema_extra={"format": "uri", "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+([/?#].*)?$"},
    ),
]
Description = Annotated[str, Field(max_length=500)]


class WebhookCreate(InputModel):
    url: WebhookURL
    description: Description = ""
    event_types: EventTypes = Field(default_factory=lambda: ["*"])
    enabled: bool = True


class WebhookUpdate(InputModel):
    """``enabled: true`` re-enables a disabled endpoint and clears its run of failures."""

    url: Annotated[WebhookURL | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    event_types: Annotated[EventTypes | None, NotNull] = None
    enabled: Annotated[bool | None, NotNull] = None


class WebhookRead(OutputModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why the endpoint was disabled (null while enabled).")
    consecutive_failures: int = Field(description="Failed attempts since the last success.")
    failing_since: datetime | None = Field(description="When the current run of failures began.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookRead:
        return cls(
            id=str(endpoint.public_id),
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            consecutive_failures=endpoint.consecutive_failures,
            failing_since=endpoint.failing_since,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookWithSecret(WebhookRead):
    """Only in the answers to create and rotate_secret: the signing secret is never shown again."""

    secret: str = Field(description="The signing secret (`whsec_...`): store it now, it is never shown again.")

    @classmethod
    def with_secret(cls, endpoint: WebhookEndpoint, secret: str) -> WebhookWithSecret:
        return cls(**WebhookRead.of(endpoint).model_dump(), secret=secret)


class WebhookDeliveryRead(OutputModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    webhook_id: str
    event_id: str = Field(description="The event's id: also the `webhook-id` header of every attempt.")
    event_seq: int | None = Field(description="The event's seq in the workspace log (set by the first attempt).")
    event_type: str
    status: WebhookDeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due, while pending.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, delivery: WebhookDelivery, webhook_id: str) -> WebhookDeliveryRead:
        return cls(
            id=str(delivery.public_id),
            webhook_id=webhook_id,
            event_id=str(delivery.event_id),
            event_seq=delivery.event_seq,
            event_type=delivery.event_type,
            status=delivery.status,
            attempt_count=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
        )


class WebhookAttemptRead(OutputModel):
    object: Literal["webhook_attempt"] = "webhook_attempt"
    attempt: int = Field(description="1 for the first attempt of the delivery, counting on across replays.")
    succeeded: bool = Field(description="The receiver answered 2xx.")
    status_code: int | None = Field(description="The receiver's HTTP status; null when none came back.")
    duration_ms: int
    error: str | None = Field(description="Why the attempt failed: timeout, connection refused, HTTP status, ...")
    response_body: str | None = Field(description="The start (at most 1 KiB) of the receiver's answer.")
    created_at: datetime

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> WebhookAttemptRead:
        code = attempt.status_code
        return cls(
            attempt=attempt.attempt,
            succeeded=code is not None and 200 <= code < 300,
            status_code=code,
            duration_ms=attempt.duration_ms,
            error=attempt.error,
            response_body=attempt.response_body,
            created_at=attempt.created_at,
        )


class WebhookDeliveryDetail(WebhookDeliveryRead):
    attempts: list[WebhookAttemptRead] = Field(description="Every attempt, oldest first.")


class WebhookReplay(InputModel):
    after_seq: int = Field(
        ge=0,
        le=MAX_JSON_INT,
        description=f"Re-deliver the events after this seq (at most {REPLAY_MAX_EVENTS} per call; see `has_more`).",
    )


class WebhookReplayResult(OutputModel):
    object: Literal["webhook_replay"] = "webhook_replay"
    queued: int = Field(description="Deliveries queued by this call.")
    last_seq: int | None = Field(description="The seq of the last event queued; continue with after_seq=last_seq.")
    has_more: bool = Field(
        description=f"More matching events remain after last_seq (a call queues at most {REPLAY_MAX_EVENTS})."
    )


WebhookPage = ListPage[WebhookRead]
WebhookDeliveryPage = ListPage[WebhookDeliveryRead]
