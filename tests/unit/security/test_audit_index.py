"""The search keys of an audit record (security/audit/index.py)."""

from __future__ import annotations

from rempart.security.audit.capture import Exchange, audit_events
from rempart.security.audit.index import index_of, patient_id, recorded_micros
from rempart.security.principal import Principal

USER = Principal("alice", True, "ehr", ("user/*.rs",), "jti-1", 0.0, "Practitioner/7")


def exchange(**facts: object) -> Exchange:
    base: dict[str, object] = {
        "request_id": "req-1",
        "recorded": "2026-11-02T10:00:00.000001Z",
        "method": "GET",
        "path": "/fhir/Patient/42/_history/3",
        "address": "10.0.0.1",
        "status": 200,
        "subtype": "vread",
        "principal": USER,
        "resource": "Patient/42/_history/3",
        "patients": ["42"],
    }
    return Exchange(**{**base, **facts})  # type: ignore[arg-type]


def test_a_vread_of_a_patient_gives_all_its_keys() -> None:
    (event,) = audit_events(exchange())
    row = index_of(event)
    assert row.recorded == recorded_micros("2026-11-02T10:00:00.000001Z")
    assert (row.type, row.subtype, row.action, row.outcome) == ("rest", "vread", "R", "0")
    assert row.request_id == "req-1"
    assert set(row.refs) == {
        ("patient", "42"),
        ("agent", "ehr"),
        ("agent", "alice"),
        ("agent", "Practitioner/7"),
        ("entity", "Patient/42/_history/3"),
        ("entity", "Patient/42"),
    }


def test_a_search_names_each_patient_in_its_own_event_only() -> None:
    ex = exchange(subtype="search-type", resource=None, patients=["1", "2"], path="/fhir/Obs")
    events = audit_events(ex)
    patients = [[v for k, v in index_of(e).refs if k == "patient"] for e in events]
    assert patients == [[], ["1"], ["2"]]
    assert {index_of(e).subtype for e in events} == {"search-type"}


def test_an_unauthenticated_refusal_keeps_the_claimed_client() -> None:
    ex = exchange(principal=None, client="intruder", status=401, resource=None, patients=[])
    row = index_of(audit_events(ex)[0])
    assert row.outcome == "4"
    assert ("agent", "intruder") in row.refs
    assert not [kind for kind, _ in row.refs if kind == "patient"]


def test_an_event_without_fields_is_indexed_with_what_it_has() -> None:
    outage = {
        "resourceType": "AuditEvent",
        "type": {"code": "audit-outage"},
        "subtype": [{"code": "audit-outage"}],
        "agent": [{"who": {"display": "rempart"}}],
    }
    row = index_of(outage)
    assert (row.recorded, row.type, row.subtype, row.outcome) == (
        0,
        "audit-outage",
        "audit-outage",
        None,
    )
    assert row.refs == ()
    assert index_of({}).refs == ()
    assert index_of({"entity": "x", "agent": [1, None], "recorded": 5}).recorded == 0


def test_recorded_times_and_patient_references_are_normalized() -> None:
    assert recorded_micros("1970-01-01T00:00:01Z") == 1_000_000
    assert recorded_micros("1970-01-01T01:00:00+01:00") == 0
    assert recorded_micros("not a date") == 0
    assert patient_id("Patient/9/_history/2") == "9"
    assert patient_id("https://h/fhir/Patient/9") == "9"
    assert patient_id("XPatient/9") == "XPatient/9"
