"""``Idempotency-Key`` on POST: the same key, API key and request replay the first response; another
request with the key is a 422.

A key belongs to the API key that first used it, and is looked at only after the route's own
authentication and scope check (``claim``, called by ``web.deps.require``): another API key, even of the
same workspace, never sees a stored response (some hold a secret shown once: a new API key, a webhook's
signing secret), and gets its own fresh processing.

The key is claimed (inserted) in the request's own transaction and its response stored in that same
transaction, so a key is saved exactly when what the request created is saved. A concurrent request with
the same key blocks on the claim until the first one ends, then replays its response. Only successful
(< 400) responses are kept: on an error the transaction, claim included, is rolled back, so a client can
fix a rejected request and retry with the same key.

A route that commits before it answers (a message POSTed with ``wait``: the run cannot start before the
message is committed) marks its claim resumable first, naming what it created (``mark_resumable``). A
retry that finds such a claim without a stored response (the first request is still waiting, or its
server died while it waited) does not create anything: the route answers it from what the first one
created (``resumed``), as it is now.

Keys expire after ``idempotency_ttl_hours``. Stored responses are encrypted (``kit.secrets``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.auth.principal import Principal
from threadline.errors import Conflict, ThreadlineError
from threadline.kit.clock import utcnow
from threadline.kit.secrets import SecretBox, SecretDecryptionError
from threadline.models import IdempotencyKey
from threadline.web import repository
from threadline.web.body import buffered_body
from threadline.web.errors import send_error
from threadline.web.surfaces import ErrorInfo

MAX_KEY_LENGTH = 255
STATE_KEY = "idempotency"
_REPLAYED_HEADERS = (b"content-type", b"location")
_HEADER = "Idempotency-Key"


@dataclass
class _Pending:
    """This request's Idempotency-Key, from the middleware to the route and back."""

    key: str
    fingerprint: str
    ttl: timedelta
    box: Callable[[], SecretBox]
    claim: IdempotencyKey | None = None  # the row this request inserted
    resumed: dict[str, Any] | None = None  # what an earlier request with the key created, to answer from
    decided: bool = False


class IdempotentReplay(Exception):
    """The stored response of an earlier request with this key, to be sent as it is."""

    def __init__(self, row: IdempotencyKey, body: bytes) -> None:
        super().__init__("idempotent replay")
        self.status_code = row.status_code
        self.headers = json.loads(row.response_headers or "{}")
        self.body = body


def replay_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    headers = {**exc.headers, "Idempotent-Replayed": "true"}
    return Response(exc.body, status_code=exc.status_code, headers=headers)


class IdempotencyMiddleware:
    """Finds the key, fingerprints the request, and stores the response of the request that claimed it."""

    def __init__(self, app: ASGIApp, ttl_hours: int, box: Callable[[], SecretBox]) -> None:
        self.app = app
        self.ttl = timedelta(hours=ttl_hours)
        self.box = box

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # /v1 only: the vendors' documents have no Idempotency-Key, and their auth headers are their own.
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        raw_key = next((v for k, v in scope["headers"] if k == b"idempotency-key"), None)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            await send_error(
                scope,
                send,
                ErrorInfo(
                    400,
                    "invalid_request_error",
                    "invalid_idempotency_key",
                    f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
                    _HEADER,
                ),
            )
            return
        pending = _Pending(key=key, fingerprint=_fingerprint(scope, buffered_body(scope)), ttl=self.ttl, box=self.box)
        scope.setdefault("state", {})[STATE_KEY] = pending

        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        start = next(m for m in captured if m["type"] == "http.response.start")
        claim = pending.claim
        if claim is not None and start["status"] < 400:
            # Stored in the same transaction as the work; on >= 400 the session layer rolls both back.
            claim.status_code = start["status"]
            body_out = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
            claim.response_body = self.box().encrypt_bytes(body_out)
            claim.response_headers = json.dumps(
                {k.decode(): v.decode("latin-1") for k, v in start.get("headers", []) if k in _REPLAYED_HEADERS}
            )
            await scope["state"]["db"].session.flush()
        if pending.resumed is not None:
            headers = [*start.get("headers", []), (b"idempotent-replayed", b"true")]
            captured = [{**start, "headers": headers} if m is start else m for m in captured]
        for message in captured:
            await send(message)


async def claim(request: Request, principal: Principal, session: AsyncSession) -> None:
    """After the route's authentication and scope check: claim this request's Idempotency-Key for its API
    key, or answer from the earlier request that did (raises ``IdempotentReplay``, or a 409/422), or note
    what to resume from (``resumed``)."""
    pending: _Pending | None = request.scope.get("state", {}).get(STATE_KEY)
    if pending is None or pending.decided:
        return
    pending.decided = True
    existing = await _load(session, principal, pending.key)
    if existing is not None and existing.expires_at <= utcnow():
        await repository.delete_claim(session, existing.id)
        existing = None
    if existing is not None:
        _answer_from(pending, existing)
        return
    now = utcnow()
    row = IdempotencyKey(
        workspace_id=principal.workspace_id,
        api_key_id=principal.api_key_id,
        key=pending.key,
        fingerprint=pending.fingerprint,
        method=request.method,
        path=request.url.path[:2048],
        status_code=0,
        response_headers="{}",
        response_body=b"",
        created_at=now,
        expires_at=now + pending.ttl,
    )
    try:
        # A concurrent request with the same key waits here, on the unique index (PostgreSQL) or on the
        # write lock (SQLite), until the first one's transaction ends.
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        winner = await _load(session, principal, pending.key)
        if winner is None:
            raise Conflict(
                "a concurrent request with this Idempotency-Key did not complete; retry",
                code="idempotency_conflict",
                param=_HEADER,
            ) from None
        _answer_from(pending, winner)
        return
    pending.claim = row


def mark_resumable(request: Request, ref: dict[str, Any]) -> None:
    """Before a route commits ahead of its answer: name what it created, for a retry to answer from."""
    pending: _Pending | None = request.scope.get("state", {}).get(STATE_KEY)
    if pending is not None and pending.claim is not None:
        pending.claim.resume_ref = json.dumps(ref, separators=(",", ":"))


def resumed(request: Request) -> dict[str, Any] | None:
    """What an earlier request with this key created and committed without storing its response yet:
    the route answers from it instead of creating anything."""
    pending: _Pending | None = request.scope.get("state", {}).get(STATE_KEY)
    return pending.resumed if pending is not None else None


def _answer_from(pending: _Pending, row: IdempotencyKey) -> None:
    if row.fingerprint != pending.fingerprint:
        raise ThreadlineError(
            "this Idempotency-Key was already used with a different request (method, path or body); "
            "use a new key for a new request",
            code="idempotency_key_reused",
            status_code=422,
            param=_HEADER,
        )
    if row.status_code == 0:
        if row.resume_ref:
            pending.resumed = json.loads(row.resume_ref)
            return
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry",
            code="idempotency_conflict",
            param=_HEADER,
        )
    try:
        body = pending.box().decrypt_bytes(row.response_body)
    except SecretDecryptionError:
        raise Conflict(
            "the stored response of this Idempotency-Key can no longer be read (the server's secret keys changed); "
            "use a new key",
            code="idempotency_response_unreadable",
            param=_HEADER,
        ) from None
    raise IdempotentReplay(row, body)


async def _load(session: AsyncSession, principal: Principal, key: str) -> IdempotencyKey | None:
    return await repository.find_claim(session, api_key_id=principal.api_key_id, key=key)


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(scope["method"].encode())
    digest.update(b"\0" + scope["path"].encode())
    digest.update(b"\0" + scope.get("query_string", b""))
    digest.update(b"\0" + body)
    return digest.hexdigest()


async def purge_expired(sessionmaker: Any) -> int:
    """Delete expired keys; returns how many. Safe to run from every process at once."""
    async with sessionmaker() as session, session.begin():
        return await repository.delete_expired(session, now=utcnow())
