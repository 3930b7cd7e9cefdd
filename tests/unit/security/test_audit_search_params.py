"""``GET /fhir/AuditEvent`` parameters (security/audit/search.py)."""

from __future__ import annotations

import pytest

from rempart.errors import RempartError
from rempart.security.audit.index import recorded_micros
from rempart.security.audit.search import AuditSearchLimits, parse_audit_search

LIMITS = AuditSearchLimits(max_days=31, default_count=50, max_count=500)
DAY = [("date", "ge2026-11-01"), ("date", "lt2026-11-02")]


def test_a_day_and_filters() -> None:
    parsed = parse_audit_search(
        (*DAY, ("patient", "Patient/1,2"), ("subtype", "http://x|read"), ("_count", "900")),
        LIMITS,
        strict=False,
    )
    query = parsed.query
    assert (query.since, query.until) == (
        recorded_micros("2026-11-01T00:00:00Z"),
        recorded_micros("2026-11-02T00:00:00Z"),
    )
    assert query.patient == ("1", "2") and query.subtype == ("read",)
    assert query.count == 500 and query.newest_first and query.after is None
    same = parse_audit_search((("date", "2026-11-01"),), LIMITS, strict=False).query
    assert (same.since, same.until) == (query.since, query.until)
    le = parse_audit_search((DAY[0], ("date", "le2026-11-01")), LIMITS, strict=False).query
    assert le.until == query.until


@pytest.mark.parametrize(
    "params",
    [
        (),
        (DAY[0],),
        (DAY[1],),
        (("date", "ge2026-01-01"), ("date", "lt2026-02-02")),
        (("date", "ne2026-11-01"),),
        (*DAY, ("patient", "1"), ("patient", "2")),
        (*DAY, ("_sort", "outcome")),
        (*DAY, ("_cursor", "x")),
        (*DAY, ("_count", "-1")),
    ],
)
def test_refused(params: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(RempartError) as refused:
        parse_audit_search(params, LIMITS, strict=False)
    assert refused.value.category.value == 400


def test_unknown_parameters_ignored_unless_strict() -> None:
    parsed = parse_audit_search((*DAY, ("colour", "blue"), ("_sort", "date")), LIMITS, strict=False)
    assert parsed.ignored == ("colour",) and not parsed.query.newest_first
    assert ("colour", "blue") not in parsed.kept
    with pytest.raises(RempartError):
        parse_audit_search((*DAY, ("colour", "blue")), LIMITS, strict=True)
    cursor = parse_audit_search((*DAY, ("_cursor", "17.4")), LIMITS, strict=True)
    assert cursor.query.after == (17, 4) and all(k != "_cursor" for k, _ in cursor.kept)
