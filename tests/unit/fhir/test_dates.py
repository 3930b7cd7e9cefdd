from datetime import UTC, datetime

import pytest

from rempart.errors import RempartError
from rempart.fhir.dates import parse_instant, parse_period


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
        ("2024-12", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
        ("2024-02-28", datetime(2024, 2, 28, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)),
        (
            "2024-02-28T10:30Z",
            datetime(2024, 2, 28, 10, 30, tzinfo=UTC),
            datetime(2024, 2, 28, 10, 31, tzinfo=UTC),
        ),
        (
            "2024-02-28T10:30:05+02:00",
            datetime(2024, 2, 28, 8, 30, 5, tzinfo=UTC),
            datetime(2024, 2, 28, 8, 30, 6, tzinfo=UTC),
        ),
        (
            "2024-02-28T10:30:05.5-01:00",
            datetime(2024, 2, 28, 11, 30, 5, 500000, tzinfo=UTC),
            datetime(2024, 2, 28, 11, 30, 5, 500001, tzinfo=UTC),
        ),
    ],
)
def test_periods_follow_precision(value: str, start: datetime, end: datetime) -> None:
    assert parse_period(value) == (start, end)
    assert parse_instant(value) == start


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2024-13",
        "2024-02-30",
        "0000",
        "9999",
        "2024-1-1",
        "2024-01-01T00:00:00+99:99",
    ],
)
def test_invalid_dates_are_400(value: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_period(value)
    assert caught.value.category.status == 400
