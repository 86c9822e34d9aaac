"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random


def backoff_ceiling(attempt: int, *, base_s: float, cap_s: float) -> float:
    """The largest delay after failed attempt ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    exponent = min(max(attempt - 1, 0), 60)  # 2**60 s is past any cap; keeps the float finite
    return float(min(cap_s, base_s * 2**exponent))


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """A delay drawn uniformly from [0, ceiling] ("full jitter"), so retries of many jobs spread out."""
    return (rng or random).uniform(0, backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s))
