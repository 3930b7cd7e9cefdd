"""Date criteria served from the index (storage/search_dates.py) keep the R4 semantics.

The fast path evaluates several criteria of one parameter on one row, which is exact
only for resources with a single value; these cases have several values (a Timing
with events), long periods and open periods, where a shortcut would go wrong.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient


def service_request(id_: str, *events: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": id_,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "occurrenceTiming": {"event": list(events)},
    }


def encounter(id_: str, start: str | None, end: str | None) -> dict[str, Any]:
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    return {"resourceType": "Encounter", "id": id_, "status": "finished",
            "class": {"code": "IMP"}, "period": period}  # fmt: skip


def ids(client: TestClient, type_: str, params: list[tuple[str, str]]) -> set[str]:
    answer = client.get(f"/fhir/{type_}", params=params, headers={"prefer": "handling=strict"})
    assert answer.status_code == 200, answer.text
    return {e["resource"]["id"] for e in answer.json().get("entry", [])}


@pytest.fixture
def stored(client: TestClient) -> TestClient:
    resources = [
        # Two events: one in January, one in March. Each criterion of a range may be
        # met by a different value (§3.1.1.3: each parameter is ANDed on the resource).
        service_request("two", "2024-01-05", "2024-03-05"),
        service_request("one", "2024-02-10"),
        encounter("long", "2023-06-01", "2024-06-01"),  # a year: longer than a day
        encounter("open", "2024-01-20", None),  # no end: runs forever
        encounter("short", "2024-01-10T08:00:00Z", "2024-01-10T09:00:00Z"),
        # Two hours across midnight: starts before the day it ends in.
        encounter("night", "2024-03-31T23:00:00Z", "2024-04-01T01:00:00Z"),
    ]
    for resource in resources:
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        assert client.put(path, json=resource).status_code == 201
    return client


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # "two": ge is met by the March event, lt by the January one.
        ([("occurrence", "ge2024-03-01"), ("occurrence", "lt2024-02-01")], {"two"}),
        # "one" (February) meets both with its one value; "two" meets ge with March and
        # lt with January; a row-by-row shortcut would miss "two".
        ([("occurrence", "ge2024-02-01"), ("occurrence", "lt2024-03-01")], {"one", "two"}),
        # "one" has a single value, which is not both after March and before February.
        ([("occurrence", "ge2024-03-01"), ("occurrence", "lt2024-02-11")], {"two"}),
        ([("occurrence", "2024-01")], {"two"}),
        ([("occurrence", "sa2024-02-15")], {"two"}),
        ([("occurrence", "eb2024-01-06")], {"two"}),
    ],
)
def test_several_values_are_each_tested(
    stored: TestClient, params: list[tuple[str, str]], expected: set[str]
) -> None:
    assert ids(stored, "ServiceRequest", params) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # January 2024 overlaps three periods; only "short" lies inside it.
        ([("date", "2024-01")], {"short"}),
        ([("date", "ge2024-01-01"), ("date", "le2024-01-31")], {"short", "long", "open"}),
        # ends after 2024-05-31 (gt): the year-long one and the open one.
        ([("date", "gt2024-05-31")], {"long", "open"}),
        # "night" ends after March although it starts within it.
        ([("date", "gt2024-03-31")], {"night", "long", "open"}),
        # ge: starts in or after the day, or ends after it; "night" does neither.
        ([("date", "ge2024-04-01")], {"long", "open"}),
        # starts before 2023-07 (lt): only the long one.
        ([("date", "lt2023-07")], {"long"}),
        ([("date", "sa2024-01-15")], {"open", "night"}),
        ([("date", "eb2024-01-15")], {"short"}),
        ([("date", "ne2024-01-10")], {"long", "open", "night"}),
    ],
)
def test_long_and_open_periods(
    stored: TestClient, params: list[tuple[str, str]], expected: set[str]
) -> None:
    assert ids(stored, "Encounter", params) == expected
