"""The capture rules: what a request becomes as AuditEvents (pure functions). How the
trail behaves when its store fails: test_audit_trail.py."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from rempart.security.audit.capture import (
    Exchange,
    answered_patients,
    audit_events,
    fhir_resource,
    fhir_subtype,
    purpose_of,
    requested_patients,
)
from rempart.security.principal import Principal

USER = Principal("dr.house", True, "emr", ("user/*.rs",), "tok-1", 0.0, fhir_user="Practitioner/42")


def exchange(**kw: Any) -> Exchange:
    values: dict[str, Any] = {
        "request_id": "req-00000001",
        "recorded": "2026-11-23T02:00:00.000000Z",
        "method": "GET",
        "path": "/fhir/Patient/p1",
        "address": "10.0.0.7",
        "status": 200,
        "subtype": "read",
        "principal": USER,
    }
    values.update(kw)
    return Exchange(**values)


def patient_refs(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event["entity"] if e["type"]["code"] == "1"]


def test_subtypes_follow_the_restful_interactions() -> None:
    assert fhir_subtype("GET", "T/I") == "read"
    assert fhir_subtype("GET", "T/I/_history/V") == "vread"
    assert fhir_subtype("GET", "T") == "search-type"
    assert fhir_subtype("POST", "T/_search") == "search-type"
    assert fhir_subtype("GET", "T/I/$") == "operation"
    assert fhir_subtype("PATCH", "T/I") == "patch"
    assert fhir_subtype("POST", "", b'{"resourceType":"Bundle","type":"transaction"}') == (
        "transaction"
    )
    assert fhir_subtype("POST", "", b'{"resourceType":"Bundle","type":"batch"}') == "batch"
    assert fhir_subtype("GET", "?") == "operation"
    assert fhir_resource({"type": "Observation", "id": "o1", "version": "2"}) == (
        "Observation/o1/_history/2"
    )
    assert fhir_resource({"type": "Observation"}) is None


def test_the_patients_a_request_names() -> None:
    assert requested_patients({"type": "Patient", "id": "p1"}, (), b"") == ["p1"]
    query = (("subject", "Patient/p2"), ("patient", "p3,p4"), ("code", "Patient/zz"))
    assert requested_patients({"type": "Observation"}, query, b"") == ["p2", "p3", "p4"]
    body = b'{"subject": {"reference" : "Patient/p5"}, "performer":[{"reference":"Patient/p5"}]}'
    assert requested_patients({"type": "Observation"}, (), body) == ["p5"]
    assert requested_patients({"type": "Patient"}, (("_id", "a,b"),), b"") == ["a", "b"]
    assert requested_patients({"type": "Observation"}, (("_id", "a"),), b"") == []


def test_the_patients_an_answer_carries() -> None:
    bundle = orjson.dumps(
        {
            "resourceType": "Bundle",
            "entry": [
                {"fullUrl": "http://h/fhir/Patient/p1", "resource": {"resourceType": "Patient"}},
                {
                    "fullUrl": "http://h/fhir/Observation/o1",
                    "resource": {"subject": {"reference": "Patient/p2/_history/3"}},
                },
                {"resource": {"subject": {"reference": "http://h/fhir/Patient/p1"}}},
                {"resource": {"note": [{"text": 'says "reference":"Patient/no" in text'}]}},
            ],
        }
    )
    assert answered_patients(["p0"], bundle) == ["p0", "p1", "p2"]
    own = b'{"resourceType":"Patient","id":"p9","link":[{"other":{"reference":"Patient/p8"}}]}'
    assert answered_patients([], own) == ["p9", "p8"]
    assert answered_patients([], None) == []
    response = b'{"entry":[{"response":{"status":"201","location":"Patient/n1/_history/1"}}]}'
    assert answered_patients([], response) == ["n1"]


def test_one_event_for_a_read_of_one_patients_record() -> None:
    [event] = audit_events(exchange(patients=["p1"], resource="Patient/p1"))
    assert event["resourceType"] == "AuditEvent" and event["action"] == "R"
    restful = "http://hl7.org/fhir/restful-interaction"
    assert event["subtype"] == [{"system": restful, "code": "read"}]
    assert patient_refs(event) == ["Patient/p1"]
    assert len([e for e in event["entity"] if "what" in e and "reference" in e["what"]]) == 1
    client, user = event["agent"]
    assert client["who"]["identifier"]["value"] == "emr" and client["policy"] == ["tok-1"]
    assert user["who"]["reference"] == "Practitioner/42" and user["requestor"] is True
    assert client["network"] == {"address": "10.0.0.7", "type": "2"}


def test_one_event_per_patient_plus_one_for_a_search() -> None:
    events = audit_events(
        exchange(subtype="search-type", path="/fhir/Observation", patients=["a", "b", "c"])
    )
    assert [patient_refs(e) for e in events] == [[], ["Patient/a"], ["Patient/b"], ["Patient/c"]]
    assert {e["action"] for e in events} == {"E"}
    empty = audit_events(exchange(subtype="search-type", path="/fhir/Observation"))
    assert len(empty) == 1
    linked = audit_events(exchange(resource="Observation/o1", patients=["a", "b"]))
    assert [patient_refs(e) for e in linked] == [[], ["Patient/a"], ["Patient/b"]]


def test_the_query_is_recorded_without_secrets() -> None:
    query = (("name", "Dupont"), ("access_token", "secret-token"), ("code", "abc"))
    [event] = audit_events(exchange(subtype="search-type", path="/fhir/Patient", query=query))
    [text] = [base64.b64decode(e["query"]) for e in event["entity"] if "query" in e]
    assert text == b"GET /fhir/Patient?name=Dupont"
    assert b"secret-token" not in orjson.dumps(event)


def test_outcomes_unauthenticated_callers_and_purpose() -> None:
    [refused] = audit_events(exchange(principal=None, status=401, detail="Invalid token"))
    assert refused["outcome"] == "4" and refused["outcomeDesc"] == "401 Invalid token"
    assert refused["agent"][0]["who"] == {"display": "unauthenticated"}
    [fault] = audit_events(exchange(status=503))
    assert fault["outcome"] == "8"
    [login] = audit_events(
        exchange(principal=None, subtype="login", user="bob", client="app", status=200)
    )
    assert login["type"]["code"] == "110114" and login["agent"][1]["who"]["identifier"] == {
        "system": "urn:rempart:user",
        "value": "bob",
    }
    assert purpose_of("TREAT") == "TREAT" and purpose_of("treat; drop") is None
    [event] = audit_events(exchange(purpose="ETREAT"))
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
