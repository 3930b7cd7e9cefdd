"""``GET /fhir/AuditEvent`` parameters → an :class:`AuditQuery` (docs/audit.md,
"Searching the audit"; FHIR R4 AuditEvent search parameters, §3.1.1 search rules).

A date range, both ends, at most ``max_days`` wide, is mandatory: the audit trail is
read by period, never whole. Filters are the AuditEvent search parameters ``patient``,
``agent``, ``entity``, ``type``, ``subtype``, ``outcome`` and ``action``; several values
of one parameter are given with commas (any of them matches), a parameter given twice
is refused. Unknown parameters are ignored and reported, or refused under
``Prefer: handling=strict``, as for every other search.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rempart.errors import Category, RempartError
from rempart.fhir.search.values import parse_date
from rempart.security.audit.index import patient_id
from rempart.security.audit.ports import AuditQuery

DAY = 86_400_000_000
FILTERS = ("patient", "agent", "entity", "type", "subtype", "outcome", "action")
TOKENS = ("type", "subtype", "outcome", "action")
"""Token parameters: ``system|code`` is matched on its code."""
CONTROLS = ("date", "_count", "_sort", "_total", "_cursor")
IGNORED = ("_format", "_pretty")
CURSOR = re.compile(r"(-?[0-9]{1,19})\.([0-9]{1,19})")
MAX_VALUES = 100


@dataclass(frozen=True)
class AuditSearchLimits:
    max_days: int
    default_count: int
    max_count: int


@dataclass(frozen=True)
class ParsedAuditSearch:
    query: AuditQuery
    ignored: tuple[str, ...]
    """Unknown parameters left out (lenient handling)."""
    kept: tuple[tuple[str, str], ...]
    """The parameters that define the search, for the Bundle's links (no cursor)."""


def parse_audit_search(
    params: tuple[tuple[str, str], ...], limits: AuditSearchLimits, *, strict: bool
) -> ParsedAuditSearch:
    known = set(FILTERS) | set(CONTROLS)
    ignored = tuple(dict.fromkeys(k for k, _ in params if k not in known and k not in IGNORED))
    if ignored and strict:
        raise _incorrect(f"Unknown AuditEvent search parameters: {', '.join(ignored)}")
    since, until = _date_range([v for k, v in params if k == "date"], limits.max_days)
    filters = {name: _values(name, params) for name in FILTERS}
    query = AuditQuery(
        since=since,
        until=until,
        **filters,
        count=_count(_single("_count", params), limits),
        after=_cursor(_single("_cursor", params)),
        newest_first=_newest_first(_single("_sort", params)),
        with_total=_single("_total", params) == "accurate",
    )
    kept = tuple((k, v) for k, v in params if k in known and k != "_cursor")
    return ParsedAuditSearch(query, ignored, kept)


def _date_range(values: list[str], max_days: int) -> tuple[int, int]:
    since: int | None = None
    until: int | None = None
    for value in values:
        date = parse_date(value)
        low = {"ge": date.start, "gt": date.end, "eq": date.start}.get(date.prefix)
        high = {"lt": date.start, "le": date.end, "eq": date.end}.get(date.prefix)
        if low is None and high is None:
            raise _incorrect("date takes the prefixes ge, gt, le, lt or eq")
        since, until = _tighter(since, low, max), _tighter(until, high, min)
    if since is None or until is None:
        raise _incorrect("A date range is required, both ends: date=geYYYY-MM-DD&date=ltYYYY-MM-DD")
    if until - since > max_days * DAY:
        raise _incorrect(f"The date range may cover at most {max_days} days")
    return since, until


def _tighter(current: int | None, new: int | None, pick: Callable[[int, int], int]) -> int | None:
    if current is None or new is None:
        return new if current is None else current
    return pick(current, new)


def _values(name: str, params: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    text = _single(name, params)
    if text is None:
        return ()
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or len(values) > MAX_VALUES:
        raise _incorrect(f"{name} takes one to {MAX_VALUES} comma-separated values")
    if name in TOKENS:
        values = [v.rpartition("|")[2] for v in values]
    elif name == "patient":
        values = [patient_id(v) for v in values]
    return tuple(dict.fromkeys(values))


def _single(name: str, params: tuple[tuple[str, str], ...]) -> str | None:
    found = [v for k, v in params if k == name]
    if len(found) > 1:
        raise _incorrect(f"{name} is given more than once (several values: use commas)")
    return found[0] if found else None


def _count(value: str | None, limits: AuditSearchLimits) -> int:
    if value is None:
        return limits.default_count
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise _incorrect("_count must be a non-negative integer")
    return min(int(value), limits.max_count)


def _cursor(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = CURSOR.fullmatch(value)
    if match is None:
        raise _incorrect("Invalid paging cursor")
    return int(match.group(1)), int(match.group(2))


def _newest_first(value: str | None) -> bool:
    if value in (None, "-date"):
        return True
    if value == "date":
        return False
    raise _incorrect("AuditEvent searches sort by date (_sort=date) or -date (the default)")


def _incorrect(message: str) -> RempartError:
    return RempartError(Category.INCORRECT, message)
