"""Token ``:in``, ``:not-in``, ``:of-type`` and reference ``:identifier`` (FHIR R4 §3.1.1.5.6-7)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
INS = "urn:oid:1.2.250.1.213.1.4.8"
GENDERS = "http://hl7.org/fhir/ValueSet/administrative-gender"
STATUSES = "http://hl7.org/fhir/ValueSet/observation-status"


def identifier(type_code: str, system: str, value: str) -> dict[str, Any]:
    return {"type": {"coding": [{"system": V2, "code": type_code}]}, "system": system,
            "value": value}  # fmt: skip


@pytest.fixture
def stored(client: TestClient) -> TestClient:
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "p1", "gender": "female",
         "identifier": [identifier("MR", "urn:mrn", "123"), identifier("NH", INS, "299")]},
        {"resourceType": "Patient", "id": "p2", "gender": "unknown"},
        {"resourceType": "Patient", "id": "p3"},  # no gender at all
        {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
         "subject": {"identifier": {"system": "urn:mrn", "value": "123"}}},
        {"resourceType": "Observation", "id": "o2", "status": "preliminary",
         "code": {"text": "y"}, "subject": {"reference": "Patient/p2"}},
    ]  # fmt: skip
    for resource in resources:
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        assert client.put(path, json=resource).status_code == 201
    return client


def ids(client: TestClient, path: str, params: dict[str, str]) -> set[str]:
    answer = client.get(f"/fhir/{path}", params=params, headers={"prefer": "handling=strict"})
    assert answer.status_code == 200, answer.text
    return {e["resource"]["id"] for e in answer.json().get("entry", [])}


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        # gender is a plain code: matched on the value set's codes, whatever the system.
        ("Patient", {"gender:in": GENDERS}, {"p1", "p2"}),
        # not-in: no gender in the value set, including no gender at all (like :not).
        ("Patient", {"gender:not-in": GENDERS}, {"p3"}),
        ("Observation", {"status:in": STATUSES}, {"o1", "o2"}),
        ("Patient", {"identifier:of-type": f"{V2}|MR|123"}, {"p1"}),
        ("Patient", {"identifier:of-type": f"{V2}|MR|999"}, set()),
        # An INS is never indexed in clear, so not by its type either.
        ("Patient", {"identifier:of-type": f"{V2}|NH|299"}, set()),
        ("Patient", {"identifier": f"{INS}|299"}, {"p1"}),
        ("Observation", {"subject:identifier": "urn:mrn|123"}, {"o1"}),
        ("Observation", {"subject:identifier": "urn:mrn|999"}, set()),
    ],
)
def test_modifiers(
    stored: TestClient, path: str, params: dict[str, str], expected: set[str]
) -> None:
    assert ids(stored, path, params) == expected


def test_unknown_value_set_and_bad_of_type_are_400(stored: TestClient) -> None:
    for params in ({"gender:in": "http://example.org/ValueSet/x"},
                   {"identifier:of-type": "only|two"}):  # fmt: skip
        answer = stored.get("/fhir/Patient", params=params)
        assert answer.status_code == 400
        assert answer.json()["resourceType"] == "OperationOutcome"
