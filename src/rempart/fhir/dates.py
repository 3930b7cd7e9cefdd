"""FHIR date/dateTime/instant values as periods (FHIR R4 §2.24.0 and §3.1.1.5.9).

A FHIR date with lower precision names a whole period: ``2024`` is the year,
``2024-03-05`` the day. :func:`parse_period` returns that period as a half-open
``[start, end)`` interval in UTC; a value without a time zone is read as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rempart.errors import Category, RempartError

DATE_TIME = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def parse_period(value: str) -> tuple[datetime, datetime]:
    """The ``[start, end)`` period a FHIR date, dateTime or instant denotes."""
    match = DATE_TIME.fullmatch(value.strip())
    if match is None:
        raise _bad()
    parts = match.groupdict()
    try:
        start = _start(parts)
        return start, _end(start, parts)
    except (ValueError, OverflowError):
        raise _bad() from None


def parse_instant(value: str) -> datetime:
    """The first moment of the period a FHIR date/time denotes (for ``_since``)."""
    return parse_period(value)[0]


def _start(parts: dict[str, str | None]) -> datetime:
    fraction = parts["f"] or ""
    micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
    moment = datetime(
        int(parts["y"] or 0),
        int(parts["m"] or 1),
        int(parts["d"] or 1),
        int(parts["H"] or 0),
        int(parts["M"] or 0),
        int(parts["S"] or 0),
        micros,
        tzinfo=UTC,
    )
    return moment - _offset(parts["tz"])


def _end(start: datetime, parts: dict[str, str | None]) -> datetime:
    if parts["f"]:
        return start + timedelta(microseconds=1)
    if parts["S"]:
        return start + timedelta(seconds=1)
    if parts["M"]:
        return start + timedelta(minutes=1)
    if parts["d"]:
        return start + timedelta(days=1)
    if parts["m"]:
        year, month = start.year + start.month // 12, start.month % 12 + 1
        return start.replace(year=year, month=month)
    return start.replace(year=start.year + 1)


def _offset(tz: str | None) -> timedelta:
    if tz is None or tz == "Z":
        return timedelta(0)
    sign = -1 if tz[0] == "-" else 1
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("time zone offset out of range")
    return sign * timedelta(hours=hours, minutes=minutes)


def _bad() -> RempartError:
    return RempartError(Category.INCORRECT, "Invalid date: use a FHIR date, dateTime or instant")
