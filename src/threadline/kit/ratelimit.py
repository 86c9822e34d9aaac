"""Rate limits and concurrency caps, in this process's memory or shared through Redis.

Two kinds of limit:
- **rates** (requests per window), counted with the `limits` library's sliding-window counter: in memory
  for one process, in Redis when ``THREADLINE_REDIS_URL`` is set, so that N API processes share one budget;
- **slots** (things open at once: event streams, requests waiting for an agent), a sorted set per budget
  in Redis (members expire unless their process renews them, so a crashed process's slots free
  themselves) or a set in memory.

When Redis cannot be reached, limits fail open (the request goes through and a warning is logged): a
limiter must never take the service down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """One request against its budget: allowed or not, and what the RateLimit-* headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until more requests are allowed

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("RateLimit-Limit", str(self.limit)),
            ("RateLimit-Remaining", str(self.remaining)),
            ("RateLimit-Reset", str(self.reset_s)),
        ]
        if not self.allowed:
            headers.append(("Retry-After", str(max(1, self.reset_s))))
        return headers


def parse_rates(spec: str) -> list[RateLimitItem]:
    """``"6000/minute;200/second"`` -> its limits (empty or ``"none"``: no limit)."""
    spec = spec.strip()
    if not spec or spec.lower() == "none":
        return []
    return list(parse_many(spec))


class Rates:
    """Budgets of requests per window, by kind (``key``, ``address``, ...) and identifier."""

    def __init__(self, storage: Storage, budgets: dict[str, Sequence[RateLimitItem]]) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._budgets = budgets
        self._warned_at = 0.0

    def limited(self, kind: str) -> bool:
        return bool(self._budgets.get(kind))

    async def hit(self, kind: str, identifier: str) -> Decision | None:
        """Count one request; the decision of the tightest budget (None: no budget of that kind)."""
        return await self._check(kind, identifier, consume=True)

    async def peek(self, kind: str, identifier: str) -> Decision | None:
        """Whether the budget has room, without counting anything."""
        return await self._check(kind, identifier, consume=False)

    async def _check(self, kind: str, identifier: str, *, consume: bool) -> Decision | None:
        items = self._budgets.get(kind)
        if not items:
            return None
        decisions = []
        try:
            for item in items:
                if consume:
                    allowed = await self._limiter.hit(item, kind, identifier)
                else:
                    allowed = await self._limiter.test(item, kind, identifier)
                stats = await self._limiter.get_window_stats(item, kind, identifier)
                reset_s = max(0, math.ceil(stats.reset_time - time.time()))
                decisions.append(Decision(allowed, item.amount, stats.remaining, reset_s))
        except Exception as exc:  # the shared store is away: let the request through
            self._warn(exc)
            return None
        refused = [d for d in decisions if not d.allowed]
        if refused:
            return max(refused, key=lambda d: d.reset_s)
        return min(decisions, key=lambda d: d.remaining / max(1, d.limit))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("ratelimit.store_unavailable", error=type(exc).__name__)


class Slots(Protocol):
    """Places held at once in a budget; ``acquire`` answers a token to release, or None when full."""

    async def acquire(self, budget: str, limit: int) -> str | None: ...

    async def release(self, budget: str, token: str) -> None: ...

    async def close(self) -> None: ...


class MemorySlots:
    def __init__(self) -> None:
        self._held: dict[str, set[str]] = {}

    async def acquire(self, budget: str, limit: int) -> str | None:
        held = self._held.setdefault(budget, set())
        if len(held) >= limit:
            return None
        token = uuid.uuid4().hex
        held.add(token)
        return token

    async def release(self, budget: str, token: str) -> None:
        held = self._held.get(budget)
        if held is not None:
            held.discard(token)
            if not held:
                del self._held[budget]

    async def close(self) -> None:
        self._held.clear()


# Atomically: forget expired members, then add this one if there is room. KEYS[1] the budget's set;
# ARGV: now, expiry of the new member, limit, token, the set's own time to live.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisSlots:
    """Slots shared by every process on one Redis. Each process renews the members it holds every third
    of their time to live; a member whose process died expires and its place frees itself."""

    def __init__(self, client: Any, prefix: str, ttl_s: float = 60.0) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_s
        self._held: dict[str, set[str]] = {}
        self._acquire = client.register_script(_ACQUIRE)
        self._renewer: asyncio.Task[None] | None = None
        self._warned_at = 0.0

    def _key(self, budget: str) -> str:
        return f"{self._prefix}:slots:{budget}"

    async def acquire(self, budget: str, limit: int) -> str | None:
        token = uuid.uuid4().hex
        now = time.time()
        try:
            ok = await self._acquire(
                keys=[self._key(budget)], args=[now, now + self._ttl, limit, token, math.ceil(self._ttl * 2)]
            )
        except Exception as exc:  # fail open, as Rates does
            self._warn(exc)
            return token
        if not ok:
            return None
        self._held.setdefault(budget, set()).add(token)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew(), name="threadline-slots-renew")
        return token

    async def release(self, budget: str, token: str) -> None:
        held = self._held.get(budget)
        if held is not None:
            held.discard(token)
            if not held:
                del self._held[budget]
        try:
            await self._client.zrem(self._key(budget), token)
        except Exception as exc:
            self._warn(exc)

    async def _renew(self) -> None:
        while self._held:
            await asyncio.sleep(self._ttl / 3)
            expiry = time.time() + self._ttl
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for budget, tokens in list(self._held.items()):
                        if tokens:
                            pipe.zadd(self._key(budget), dict.fromkeys(tokens, expiry), xx=True)
                            pipe.expire(self._key(budget), math.ceil(self._ttl * 2))
                    await pipe.execute()
            except Exception as exc:
                self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("ratelimit.store_unavailable", error=type(exc).__name__)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for budget, tokens in list(self._held.items()):
            with contextlib.suppress(Exception):
                await self._client.zrem(self._key(budget), *tokens)
        self._held.clear()


@dataclass
class LimitStores:
    """Where this process keeps its counts: the rate storage and the slots, and what closes them."""

    storage: Storage
    slots: Slots
    client: Any | None = None

    async def close(self) -> None:
        await self.slots.close()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()


def limit_stores(redis_url: str | None, prefix: str) -> LimitStores:
    """Memory for one process; Redis (shared by every process pointed at it) when ``redis_url`` is set."""
    if not redis_url:
        return LimitStores(storage=MemoryStorage(), slots=MemorySlots())
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    storage = RedisStorage(
        "async+" + redis_url if not redis_url.startswith("async+") else redis_url,
        implementation="redispy",
        key_prefix=f"{prefix}:rates",
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    return LimitStores(storage=storage, slots=RedisSlots(client, prefix), client=client)
