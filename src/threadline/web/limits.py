"""This process's budgets: requests per API key and per client address (web.access counts them), and
places at once for event streams and for requests waiting on an agent (the routes that open them take a
place, and give it back when the stream or the wait ends)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from threadline.auth.principal import Principal
from threadline.config import Settings
from threadline.errors import TooManyRequests
from threadline.kit.ratelimit import LimitStores, Rates, limit_stores, parse_rates


class Held(StrEnum):
    STREAMS = "streams"
    WAITS = "waits"


_WHAT = {
    Held.STREAMS: ("open event streams", "close a stream first"),
    Held.WAITS: ("requests waiting for an agent's reply", "wait for one to answer first"),
}
RETRY_AFTER_S = "5"


@dataclass
class Place:
    """Places taken in the API key's and the workspace's budgets; ``release`` gives them back (once)."""

    limits: Limits
    taken: list[tuple[str, str]]

    def release(self) -> None:
        taken, self.taken = self.taken, []
        if taken:
            self.limits.give_back(taken)


class Limits:
    def __init__(self, stores: LimitStores, rates: Rates, caps: dict[Held, tuple[int, int]]) -> None:
        self.stores = stores
        self.rates = rates
        self.caps = caps
        self._returns: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        stores = limit_stores(settings.limits.redis_url, settings.limits.redis_prefix)
        rates = Rates(
            stores.storage,
            {
                "key": parse_rates(settings.limits.per_key),
                "address": parse_rates(settings.limits.per_address),
                "auth_failure": parse_rates(settings.limits.auth_failures),
            },
        )
        caps = {
            Held.STREAMS: (settings.limits.streams_per_key, settings.limits.streams_per_workspace),
            Held.WAITS: (settings.limits.waits_per_key, settings.limits.waits_per_workspace),
        }
        return cls(stores, rates, caps)

    async def take(self, what: Held, principal: Principal) -> Place:
        """A place for one more stream (or wait) of this API key and its workspace; 429 when either is full."""
        per_key, per_workspace = self.caps[what]
        taken: list[tuple[str, str]] = []
        for budget, cap, whose in (
            (f"{what}:key:{principal.api_key_id}", per_key, "this API key"),
            (f"{what}:workspace:{principal.workspace_id}", per_workspace, "this workspace"),
        ):
            token = await self.stores.slots.acquire(budget, cap)
            if token is None:
                self.give_back(taken)
                noun, advice = _WHAT[what]
                raise TooManyRequests(
                    f"{whose} already has {cap} {noun}, its limit; {advice}",
                    code=f"too_many_{what}",
                    headers={"Retry-After": RETRY_AFTER_S},
                )
            taken.append((budget, token))
        return Place(self, taken)

    def give_back(self, taken: list[tuple[str, str]]) -> None:
        """Callable from anywhere (a stream's ``finally``, a sync callback): the release runs in a task."""

        async def release() -> None:
            for budget, token in taken:
                await self.stores.slots.release(budget, token)

        task = asyncio.get_running_loop().create_task(release())
        self._returns.add(task)
        task.add_done_callback(self._returns.discard)

    async def close(self) -> None:
        if self._returns:
            await asyncio.gather(*self._returns, return_exceptions=True)
        await self.stores.close()
