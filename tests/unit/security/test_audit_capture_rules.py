"""The capture rules: what a request becomes as AuditEvents (pure functions), and how
the trail behaves when its store fails."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from rempart.errors import Category, RempartError
from rempart.security.audit import trail as trail_module
from rempart.security.audit.capture import (
    Exchange,
    answered_patients,
    audit_events,
    fhir_resource,
    fhir_subtype,
    purpose_of,
    requested_patients,
)
from rempart.security.audit.records import Checkpoint
from rempart.security.audit.trail import AuditTrail
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


class FlakySink:
    def __init__(self) -> None:
        self.broken = False
        self.appended: list[Mapping[str, Any]] = []
        self.checkpoints = 0

    async def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        if self.broken:
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable")
        self.appended.extend(events)
        return list(range(len(self.appended) - len(events) + 1, len(self.appended) + 1))

    async def checkpoint(self) -> Checkpoint:
        self.checkpoints += 1
        return Checkpoint(len(self.appended), b"", "", b"")

    async def close(self) -> None:
        pass


def test_a_failing_store_refuses_then_recovers_with_an_outage_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(trail_module.time, "monotonic", lambda: clock[0])
    sink = FlakySink()
    trail = AuditTrail(sink, 0)

    async def scenario() -> None:
        await trail.admit()
        await trail.record([{"n": 1}])
        sink.broken = True
        with pytest.raises(RempartError):
            await trail.record([{"n": 2}])
        for _ in range(3):  # within the second: refused without touching the store
            with pytest.raises(RempartError) as refused:
                await trail.admit()
            assert refused.value.category is Category.UNAVAILABLE
        clock[0] += 1.5
        with pytest.raises(RempartError):  # retried, still down
            await trail.admit()
        sink.broken = False
        clock[0] += 1.5
        await trail.admit()  # retried, the outage event is written, service resumes
        await trail.admit()
        await trail.close()

    asyncio.run(scenario())
    *_, outage, kept = sink.appended
    assert outage["subtype"][0]["code"] == "audit-outage"
    assert "5 requests refused" in outage["outcomeDesc"]
    assert kept == {"n": 2}  # the request that ran while the store failed
    assert sink.checkpoints == 1  # the last one, at close


class PickySink(FlakySink):
    """Refuses any group holding a poisoned event, as PostgreSQL refused a NUL."""

    async def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        if any(event.get("poison") for event in events):
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable")
        return await super().append_many(events)


def test_an_event_the_store_refuses_does_not_block_the_trail_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(trail_module.time, "monotonic", lambda: clock[0])
    sink = PickySink()
    trail = AuditTrail(sink, 0)

    async def scenario() -> None:
        with pytest.raises(RempartError):
            await trail.record([{"poison": True}])
        clock[0] += 1.5
        await trail.admit()  # the kept event is refused again; the outage event alone is not
        await trail.record([{"n": 3}])

    asyncio.run(scenario())
    outage, after = sink.appended
    assert outage["subtype"][0]["code"] == "audit-outage"
    assert "the 0 events after this one" in outage["outcomeDesc"]
    assert "1 more such events could not be kept or written" in outage["outcomeDesc"]
    assert after == {"n": 3}
