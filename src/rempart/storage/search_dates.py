"""Date criteria that an index can answer quickly (FHIR R4 §3.1.1.4, §3.1.1.5.9).

A stored date is a period ``[lo, hi)`` and most prefixes compare both ends (``ge`` is
"starts at or after the start, or ends after the end"), which no b-tree on ``lo`` can
serve on its own, and a range ``date=ge2024-01&date=lt2024-02`` is two criteria that
each select half the table before they are intersected. Two facts kept on each index
row make it cheap while staying exact:

- ``long``: the period is longer than a day. For the others ``hi - lo <= DAY``, so
  each prefix bounds ``lo`` (``hi > e`` implies ``lo > e - DAY``) and the b-tree on
  ``(type, param, many, long, lo)`` reads only the rows near the searched dates;
  the few long periods are read apart with the exact test only.
- ``many``: the resource has several values for the parameter. For the others, "some
  value matches each criterion" is "the one value matches all criteria", so the
  criteria on one parameter are evaluated together on one row (one narrow range);
  resources with several values are answered criterion by criterion, as the
  specification reads, from their own (small) part of the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rempart.fhir.search.query import DateQ, Test
from rempart.storage.ports import now_micros
from rempart.storage.sql import Sql, join

DAY = 86_400_000_000  # µs
FOREVER = 2**62


def date_criteria(tests: Sequence[Test], alias: str, type_: str, next_alias: Any) -> Sql:
    """All the criteria of one date parameter (ANDed), as one condition on ``alias``."""
    param = tests[0].param.code
    head = "{d}.type = ? AND {d}.param = ?"
    parts: list[Sql] = []
    # "many IN (0, 1)" says nothing but lets the b-tree reach the columns after it.
    single = " AND {d}.many IN (0, 1)" if len(tests) == 1 else " AND {d}.many = 0"
    for long in (0, 1):
        d = next_alias("d")
        where, params = join(" AND ", [_any(test, d) for test in tests], wrap=False)
        if long == 0:  # one range on lo that the b-tree can read (SQLite uses one only)
            low, high = _lo_hull(tests)
            where, params = f"{d}.lo >= ? AND {d}.lo < ? AND {where}", [low, high, *params]
        sql = f"SELECT {d}.seq FROM idx_date {d} WHERE {head}{single} AND {d}.long = ? AND {where}"
        parts.append((f"{alias}.seq IN ({sql.format(d=d)})", [type_, param, long, *params]))
    if len(tests) > 1:  # several values: each criterion on its own, as §3.1.1.3 reads
        several = []
        for test in tests:
            d = next_alias("d")
            where, params = _any(test, d)
            sql = f"SELECT {d}.seq FROM idx_date {d} WHERE {head} AND {d}.many = 1 AND {where}"
            several.append((f"{alias}.seq IN ({sql.format(d=d)})", [type_, param, *params]))
        parts.append(join(" AND ", several, wrap=True))
    return join(" OR ", parts, wrap=True)


def _any(test: Test, d: str) -> Sql:
    parts = []
    for value in test.values:
        assert isinstance(value, DateQ)
        parts.append(date_sql(value, f"{d}.lo", f"{d}.hi"))
    return join(" OR ", parts, wrap=True)


def _lo_hull(tests: Sequence[Test]) -> tuple[int, int]:
    """The narrowest ``[low, high)`` holding ``lo`` of every short period that can match:
    for each criterion the hull of its values' ranges, intersected across criteria."""
    low, high = -FOREVER, FOREVER
    for test in tests:
        ranges = [lo_range(value) for value in test.values if isinstance(value, DateQ)]
        low = max(low, min(r[0] for r in ranges))
        high = min(high, max(r[1] for r in ranges))
    return low, high


def lo_range(value: DateQ) -> tuple[int, int]:
    """``[low, high)`` holding ``lo`` of every period of at most a day that matches."""
    s, e = value.start, value.end
    ranges = {
        "eq": (s, e),
        "ne": (-FOREVER, FOREVER),
        "gt": (e - DAY + 1, FOREVER),
        "lt": (-FOREVER, s),
        "ge": (min(s, e - DAY + 1), FOREVER),
        "le": (-FOREVER, e),
        "sa": (e, FOREVER),
        "eb": (-FOREVER, s),
    }
    if value.prefix == "ap":
        start, end = approximate(value)
        return start - DAY + 1, end
    return ranges[value.prefix]


def approximate(value: DateQ) -> tuple[int, int]:
    """The period ``ap`` accepts overlaps: widened by a tenth of its distance from now."""
    s, e = value.start, value.end
    now = now_micros()
    margin = max(int(abs(now - s) * 0.1), e - s)
    return s - margin, e + margin


def date_sql(value: DateQ, lo: str, hi: str) -> Sql:
    """A stored ``[lo, hi)`` period against the searched ``[start, end)`` (§3.1.1.4)."""
    s, e = value.start, value.end
    if value.prefix == "ap":
        start, end = approximate(value)
        return f"({lo} < ? AND {hi} > ?)", [end, start]
    sql, params = _EXACT[value.prefix]
    return sql.format(lo=lo, hi=hi), [s if p == "s" else e for p in params]


_EXACT: dict[str, tuple[str, str]] = {
    "eq": ("({lo} >= ? AND {hi} <= ?)", "se"),
    "ne": ("NOT ({lo} >= ? AND {hi} <= ?)", "se"),
    "gt": ("{hi} > ?", "e"),
    "lt": ("{lo} < ?", "s"),
    "ge": ("({lo} >= ? OR {hi} > ?)", "se"),
    "le": ("({lo} < ? OR {hi} <= ?)", "se"),
    "sa": ("{lo} >= ?", "e"),
    "eb": ("{hi} <= ?", "s"),
}
