"""One place that says what time it is, so tests can reason about timestamps; and arithmetic on times that
stays inside datetime's range (years 1 to 9999) instead of raising OverflowError far from its cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_unix_seconds(seconds: int) -> datetime | None:
    """The UTC moment ``seconds`` after the Unix epoch; None when a datetime cannot hold it (after year 9999).
    (``datetime.fromtimestamp`` raises ValueError, OverflowError or OSError there, by platform.)"""
    try:
        return EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def days(count: float) -> timedelta:
    """``count`` days, or the longest timedelta when that is longer (a retention of a billion days)."""
    try:
        return timedelta(days=count)
    except OverflowError:
        return timedelta.max


def ago(delta: timedelta, *, now: datetime | None = None) -> datetime:
    """The moment ``delta`` before ``now``; the earliest moment a datetime holds when that is further back
    (purging what is older than ten thousand years purges nothing, rather than failing)."""
    now = now or utcnow()
    try:
        return now - delta
    except OverflowError:
        return EARLIEST
