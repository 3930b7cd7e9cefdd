"""How many services and staff an establishment of a given size has, and when interns
rotate.

French interns (internes) change posts every semester, early May and early November;
the generator keeps six semesters of them, so the interns of past semesters have a
contract end before the reference date: they have left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

SEMESTERS = 6


@dataclass(frozen=True)
class Sizing:
    services: int
    physicians: int
    """Per service."""
    nurses: int
    """Per service."""
    interns: int
    """Per service and semester."""
    admission: int
    administrative: int
    lab: int


def sizing(patients: int, available_services: int) -> Sizing:
    return Sizing(
        services=min(available_services, 4 + patients // 250),
        physicians=2 + patients // 2000,
        nurses=3 + patients // 1000,
        interns=1 + patients // 5000,
        admission=2 + patients // 5000,
        administrative=1 + patients // 10000,
        lab=2 + patients // 5000,
    )


def semester_starts(reference: date) -> list[date]:
    """Start dates of the last ``SEMESTERS`` semesters, the current one first."""
    starts = [_current_start(reference)]
    while len(starts) < SEMESTERS:
        previous = starts[-1]
        starts.append(
            date(previous.year, 5, 2) if previous.month == 11 else date(previous.year - 1, 11, 2)
        )
    return starts


def semester_end(starts: list[date], index: int) -> date:
    """The last day of semester ``index`` (the current one ends six months on)."""
    if index > 0:
        return starts[index - 1] - timedelta(days=1)
    start = starts[0]
    following = date(start.year, 11, 2) if start.month == 5 else date(start.year + 1, 5, 2)
    return following - timedelta(days=1)


def semester_of(starts: list[date], moment: date) -> int | None:
    """Index of the semester ``moment`` falls in, None if before the oldest."""
    for index, start in enumerate(starts):
        if moment >= start:
            return index
    return None


def _current_start(reference: date) -> date:
    if reference >= date(reference.year, 11, 2):
        return date(reference.year, 11, 2)
    if reference >= date(reference.year, 5, 2):
        return date(reference.year, 5, 2)
    return date(reference.year - 1, 11, 2)
