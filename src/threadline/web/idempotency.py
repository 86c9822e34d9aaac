"""``Idempotency-Key`` on POST: the same key and body replay the first response; another body is a 422.

The key is claimed (inserted) at the start of the request's own transaction and its response stored in
that same transaction, so a key is saved exactly when what the request created is saved. A concurrent
request with the same key blocks on the claim until the first one ends, then replays its response.
Only successful (< 400) responses are kept: on an error the transaction, claim included, is rolled
back, so a client can fix a rejected request and retry with the same key.
Keys expire after ``idempotency_ttl_hours``. Stored responses are encrypted (``kit.secrets``): some carry a
secret shown once (a new API key, a webhook's signing secret), which must not sit readable in the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.kit.clock import utcnow
from threadline.kit.secrets import SecretBox, SecretDecryptionError
from threadline.models import IdempotencyKey
from threadline.web.deps import resolve_principal
from threadline.web.errors import send_error
from threadline.web.session import SessionHolder
from threadline.web.surfaces import ErrorInfo

MAX_KEY_LENGTH = 255
_REPLAYED_HEADERS = (b"content-type", b"location")


class IdempotencyMiddleware:
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
        request = Request(scope)
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            await _send_error(
                scope, send, 400, "invalid_idempotency_key", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"
            )
            return
        principal = await resolve_principal(request)
        if principal is None:  # let the route answer 401 in its own words
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        fingerprint = _fingerprint(scope, body)
        holder: SessionHolder = scope["state"]["db"]
        session = holder.session
        existing = await _load(session, principal.workspace_id, key)
        if existing is not None and existing.expires_at <= utcnow():
            await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == existing.id))
            existing = None
        if existing is not None:
            await _replay_or_reject(scope, send, existing, fingerprint, self.box)
            return

        # Claim the key before doing the work: a concurrent request with the same key waits here on the
        # unique index (PostgreSQL) or on the write lock (SQLite) until this transaction ends.
        now = utcnow()
        claim = IdempotencyKey(
            workspace_id=principal.workspace_id,
            key=key,
            fingerprint=fingerprint,
            method=scope["method"],
            path=scope["path"][:2048],
            status_code=0,
            response_headers="{}",
            response_body=b"",
            created_at=now,
            expires_at=now + self.ttl,
        )
        session.add(claim)
        try:
            await session.flush()
        except IntegrityError:
            # The other request committed first: answer with its response.
            await session.rollback()
            winner = await _load(session, principal.workspace_id, key)
            if winner is None or winner.status_code == 0:
                await _send_error(
                    scope,
                    send,
                    409,
                    "idempotency_conflict",
                    "a concurrent request with this Idempotency-Key did not complete; retry",
                )
                return
            await _replay_or_reject(scope, send, winner, fingerprint, self.box)
            return

        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, _replay_receive(body), capture)
        start = next(m for m in captured if m["type"] == "http.response.start")
        if start["status"] < 400:
            # Stored in the same transaction as the work; on >= 400 the session layer rolls both back.
            claim.status_code = start["status"]
            body_out = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
            claim.response_body = self.box().encrypt_bytes(body_out)
            claim.response_headers = json.dumps(
                {k.decode(): v.decode("latin-1") for k, v in start.get("headers", []) if k in _REPLAYED_HEADERS}
            )
            await session.flush()
        for message in captured:
            await send(message)


async def _load(session: Any, workspace_id: int, key: str) -> IdempotencyKey | None:
    result = await session.execute(
        select(IdempotencyKey).where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
    )
    row: IdempotencyKey | None = result.scalar_one_or_none()
    return row


async def _replay_or_reject(
    scope: Scope, send: Send, row: IdempotencyKey, fingerprint: str, box: Callable[[], SecretBox]
) -> None:
    if row.fingerprint != fingerprint:
        await _send_error(
            scope,
            send,
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request (method, path or body); "
            "use a new key for a new request",
        )
        return
    try:
        body = box().decrypt_bytes(row.response_body)
    except SecretDecryptionError:
        await _send_error(
            scope,
            send,
            409,
            "idempotency_response_unreadable",
            "the stored response of this Idempotency-Key can no longer be read (the server's secret keys changed); "
            "use a new key",
        )
        return
    headers = [(k.encode(), v.encode("latin-1")) for k, v in json.loads(row.response_headers or "{}").items()]
    headers.append((b"idempotent-replayed", b"true"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": row.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    await send_error(scope, send, ErrorInfo(status, "invalid_request_error", code, message, "Idempotency-Key"))


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(scope["method"].encode())
    digest.update(b"\0" + scope["path"].encode())
    digest.update(b"\0" + scope.get("query_string", b""))
    digest.update(b"\0" + body)
    return digest.hexdigest()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def purge_expired(sessionmaker: Any) -> int:
    """Delete expired keys; returns how many. Safe to run from every process at once."""
    async with sessionmaker() as session, session.begin():
        result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
