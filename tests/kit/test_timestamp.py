"""``Timestamp``, the one type of every date-time input: RFC 3339 with an offset, given back in UTC, and refused
(as a validation error naming the field, never an OverflowError later) when its instant is outside datetime's
range once converted to UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from threadline.kit.schemas import InputModel, Timestamp


class Filter(InputModel):
    since: Timestamp


@pytest.mark.parametrize(
    ("given", "instant"),
    [
        ("2025-01-31T12:00:00+05:30", datetime(2025, 1, 31, 6, 30, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59+23:59", datetime(9999, 12, 31, 0, 0, 59, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime.min.replace(tzinfo=UTC)),
        ("0001-01-01T23:59:59-23:59", datetime(1, 1, 2, 23, 58, 59, tzinfo=UTC)),
    ],
)
def test_an_instant_datetime_can_hold_comes_back_in_utc(given: str, instant: datetime) -> None:
    since = Filter.model_validate({"since": given}).since
    assert since == instant and since.tzinfo is UTC


@pytest.mark.parametrize(
    "given",
    [
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:59:59.999999-23:59",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00.000001+00:01",
    ],
)
def test_an_offset_that_moves_the_instant_out_of_range_is_a_validation_error_of_the_field(given: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Filter.model_validate({"since": given})
    (error,) = caught.value.errors()
    assert (error["type"], error["loc"]) == ("datetime_out_of_range", ("since",))
    assert "UTC" in error["msg"]
    with pytest.raises(ValidationError):  # from JSON too, as a body is read
        Filter.model_validate_json(f'{{"since": "{given}"}}')


def test_the_rfc3339_checks_still_come_first() -> None:
    for given in ("2025-01-31T12:00:00", 1738324800, "0000-01-01T00:00:00Z"):
        with pytest.raises(ValidationError) as caught:
            Filter.model_validate({"since": given})
        assert caught.value.errors()[0]["type"] != "datetime_out_of_range"
