"""Time arithmetic that stays inside datetime's range (years 1 to 9999) instead of raising OverflowError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from threadline.kit.clock import EARLIEST, ago, days, from_unix_seconds


def test_unix_seconds_up_to_the_last_second_of_9999_and_none_after() -> None:
    assert from_unix_seconds(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert from_unix_seconds(1_700_000_000) == datetime.fromtimestamp(1_700_000_000, UTC)
    assert from_unix_seconds(253_402_300_799) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert from_unix_seconds(253_402_300_800) is None
    assert from_unix_seconds(999_999_999_999) is None
    assert from_unix_seconds(10**30) is None


def test_ago_holds_at_the_earliest_moment_instead_of_overflowing() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert ago(timedelta(days=1), now=now) == datetime(2025, 5, 31, tzinfo=UTC)
    assert ago(days(800_000), now=now) == EARLIEST
    assert ago(days(1e12), now=now) == EARLIEST  # longer than a timedelta holds
    assert days(1e12) == timedelta.max and days(1.5) == timedelta(days=1, hours=12)
