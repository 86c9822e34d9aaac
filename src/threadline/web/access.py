"""Who is calling, and how often: checked before anything is held for the request.

This layer runs after the body has been read whole (web.body) and before the request's own session and
SQLite's write queue (web.session):

- the keys a request carries are looked up in one short read of their own, so a client with a wrong key
  or none never waits in a write queue holding a connection. Routes then find the result here (web.deps
  for /v1, dialects.base for the vendors' mounts) instead of querying again; each surface still decides
  which of its headers counts and which scope it needs;
- each request is counted against its budget (kit.ratelimit): its API key's when it carries a valid one,
  else its client address's (the channel webhooks, the console's sign-in, anything without a key). Every
  limited response says where its budget stands (``RateLimit-Limit``, ``-Remaining``, ``-Reset``); a
  request over budget is a 429 with ``Retry-After``, in its surface's error format, before any query;
- an address that keeps presenting keys that do not authenticate is slowed down: past its budget of
  failures its requests with a key are 429s, answered without looking the key up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.auth.principal import Principal
from threadline.auth.service import LastUsedRecorder, authenticate, presented_keys
from threadline.kit.ratelimit import Decision, Rates
from threadline.web.errors import send_error
from threadline.web.surfaces import ErrorInfo

CREDENTIALS = "credentials"  # request.state: {presented key: its Principal, or None when unknown or revoked}
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapers, never counted


class AccessMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        read_maker: async_sessionmaker[AsyncSession],
        last_used: LastUsedRecorder,
        rates: Rates,
        trust_forwarded: bool = False,
    ) -> None:
        self.app = app
        self.read_maker = read_maker
        self.last_used = last_used
        self.rates = rates
        self.trust_forwarded = trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        address = client_address(scope, trust_forwarded=self.trust_forwarded)
        keys = presented_keys(Headers(scope=scope))
        principal: Principal | None = None
        if keys:
            slowed = await self.rates.peek("auth_failure", address)
            if slowed is not None and not slowed.allowed:
                await _too_many(
                    scope,
                    send,
                    slowed,
                    "too_many_failed_authentications",
                    "too many requests with keys that do not authenticate from this address; wait before trying again",
                )
                return
            principal = await self._authenticate(scope, keys)
            if principal is None:
                await self.rates.hit("auth_failure", address)
        decision = (
            await self.rates.hit("key", str(principal.api_key_id))
            if principal is not None
            else await self.rates.hit("address", address)
        )
        if decision is None:
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            await _too_many(scope, send, decision, "rate_limited", "too many requests; slow down")
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in decision.headers()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _authenticate(self, scope: Scope, keys: tuple[str, ...]) -> Principal | None:
        """Look every presented key up; the first that authenticates (each surface later takes its own)."""
        found: dict[str, Principal | None] = {}
        async with self.read_maker() as session:
            for key in keys:
                found[key] = await authenticate(session, key)
        scope.setdefault("state", {})[CREDENTIALS] = found
        valid = [p for p in found.values() if p is not None]
        for principal in valid:
            self.last_used.touch(principal.api_key_id)
        return valid[0] if valid else None


async def _too_many(scope: Scope, send: Send, decision: Decision, code: str, message: str) -> None:
    headers = [(name.lower().encode(), value.encode()) for name, value in decision.headers()]

    async def with_headers(out: Message) -> None:
        if out["type"] == "http.response.start":
            out = {**out, "headers": [*out.get("headers", []), *headers]}
        await send(out)

    await send_error(scope, with_headers, ErrorInfo(429, "rate_limit_error", code, message))


def client_address(scope: Scope, *, trust_forwarded: bool) -> str:
    """The address the request came from; behind a trusted proxy, the last ``X-Forwarded-For`` entry (the
    one that proxy added: entries before it are the client's own say)."""
    if trust_forwarded:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                last = value.decode("latin-1").split(",")[-1].strip()
                if last:
                    return last[:64]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def principal_for(request: Request, key: str, session: AsyncSession) -> Principal | None:
    """The principal of ``key`` as checked before the request began (``session`` only for a request that
    did not pass through this layer)."""
    found: dict[str, Any] | None = request.scope.get("state", {}).get(CREDENTIALS)
    if found is not None and key in found:
        principal: Principal | None = found[key]
        return principal
    return await authenticate(session, key)
