"""Batch and transaction Bundles (FHIR R4 http.html §3.1.0.13) through the real ASGI app,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import bearer, mint_token
from rempart.config import LimitSettings, Settings

FHIR = "application/fhir+json"
SYS = "http://hospital.example/mrn"


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def post_bundle(client: TestClient, kind: str, entries: list[dict[str, Any]]) -> Any:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return client.post("/fhir", content=json.dumps(bundle), headers={"content-type": FHIR})


def create(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


def call(method: str, url: str, resource: dict[str, Any] | None = None, **request: str) -> Any:
    entry: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        entry["resource"] = resource
    return entry


def patient(mrn: str | None = None, **fields: Any) -> dict[str, Any]:
    identifier = [{"system": SYS, "value": mrn}] if mrn else []
    return {"resourceType": "Patient", **({"identifier": identifier} if mrn else {}), **fields}


def observation(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": subject},
    }


def put_patient(client: TestClient, id_: str, mrn: str | None = None, **fields: Any) -> None:
    body = json.dumps({**patient(mrn, **fields), "id": id_})
    response = client.put(f"/fhir/Patient/{id_}", content=body, headers={"content-type": FHIR})
    assert response.status_code in (200, 201), response.text


def statuses(response: Any) -> list[str]:
    return [entry["response"]["status"] for entry in response.json()["entry"]]


def total(client: TestClient, type_: str) -> int:
    return int(client.get(f"/fhir/{type_}?_total=accurate").json()["total"])


def history_size(client: TestClient) -> int:
    return len(client.get("/fhir/_history").json().get("entry", []))


def outcome_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body  # type: ignore[no-any-return]


# --- transaction ---------------------------------------------------------------------


def test_transaction_rewrites_placeholder_references(client: TestClient) -> None:
    pat_url, obs_url = urn(), urn()
    entries = [
        create(observation(pat_url), obs_url),
        create(patient("t1", name=[{"family": "Durand"}]), pat_url),
    ]
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    assert statuses(response) == ["201 Created", "201 Created"]
    obs_entry, pat_entry = body["entry"]
    assert obs_entry["resource"]["resourceType"] == "Observation"  # request order kept
    for entry in body["entry"]:
        assert entry["response"]["etag"] == 'W/"1"'
        type_, id_ = entry["resource"]["resourceType"], entry["resource"]["id"]
        assert entry["response"]["location"] == f"{type_}/{id_}/_history/1"
    patient_id = pat_entry["resource"]["id"]
    stored = client.get(f"/fhir/Observation/{obs_entry['resource']['id']}").json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"
    assert client.get(f"/fhir/Patient/{patient_id}").json()["name"][0]["family"] == "Durand"


def test_transaction_reads_run_after_the_writes(client: TestClient) -> None:
    put_patient(client, "p1")
    entries = [call("GET", "Patient/p1"), call("DELETE", "Patient/p1")]
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 200, response.text
    assert statuses(response) == ["410 Gone", "204 No Content"]
    assert client.get("/fhir/Patient/p1").status_code == 410


def test_transaction_if_none_exist_reuses_the_match(client: TestClient) -> None:
    put_patient(client, "known", "m-1")
    pat_url = urn()
    entries = [
        create(patient("m-1", active=True), pat_url, ifNoneExist=f"identifier={SYS}|m-1"),
        create(observation(pat_url)),
    ]
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 200, response.text
    assert statuses(response) == ["200 OK", "201 Created"]
    assert response.json()["entry"][0]["resource"]["id"] == "known"
    assert total(client, "Patient") == 1
    assert client.get("/fhir/Patient/known").json()["meta"]["versionId"] == "1"
    obs_id = response.json()["entry"][1]["resource"]["id"]
    stored = client.get(f"/fhir/Observation/{obs_id}").json()
    assert stored["subject"]["reference"] == "Patient/known"


def test_transaction_resolves_conditional_references(client: TestClient) -> None:
    put_patient(client, "target", "m-7")
    put_patient(client, "other", "m-8")
    entries = [create(observation(f"Patient?identifier={SYS}|m-7"))]
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 200, response.text
    obs_id = response.json()["entry"][0]["resource"]["id"]
    stored = client.get(f"/fhir/Observation/{obs_id}").json()
    assert stored["subject"]["reference"] == "Patient/target"


@pytest.mark.parametrize("matching", [0, 2])
def test_conditional_reference_must_match_exactly_one(client: TestClient, matching: int) -> None:
    for n in range(matching):
        put_patient(client, f"twin{n}", "dup")
    entries = [
        create(patient("fresh")),
        create(observation(f"Patient?identifier={SYS}|dup")),
    ]
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 412
    outcome_of(response)
    assert total(client, "Patient") == matching
    assert total(client, "Observation") == 0


def test_transaction_with_an_invalid_resource_writes_nothing(client: TestClient) -> None:
    entries = [create(patient(f"ok{n}")) for n in range(3)]
    entries.append(create(patient("bad", active="not-a-boolean")))
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 400, response.text
    assert outcome_of(response)["issue"][0]["severity"] in ("error", "fatal")
    assert total(client, "Patient") == 0
    assert history_size(client) == 0


def test_transaction_failing_in_the_store_rolls_back_earlier_writes(client: TestClient) -> None:
    put_patient(client, "p1", active=True)
    # The creates are processed before the update (§3.1.0.13.2), so they reach the
    # database first and must be rolled back when the update's If-Match fails.
    entries = [create(patient(f"ok{n}")) for n in range(3)]
    entries.append(call("PUT", "Patient/p1", {**patient(), "id": "p1"}, ifMatch='W/"9"'))
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 412, response.text
    outcome_of(response)
    assert total(client, "Patient") == 1
    assert history_size(client) == 1
    assert client.get("/fhir/Patient/p1").json()["active"] is True


def test_transaction_with_stale_if_match_applies_no_entry(client: TestClient) -> None:
    put_patient(client, "p1", active=True)
    put_patient(client, "p2", active=True)
    put_patient(client, "p3")
    entries = [
        call("PUT", "Patient/p2", {**patient(), "id": "p2", "active": False}),
        call("DELETE", "Patient/p3"),
        call("PUT", "Patient/p1", {**patient(), "id": "p1", "active": False}, ifMatch='W/"2"'),
    ]
    response = post_bundle(client, "transaction", entries)
    assert response.status_code == 412
    outcome_of(response)
    assert client.get("/fhir/Patient/p2").json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/p3").status_code == 200
    assert client.get("/fhir/Patient/p1").json()["active"] is True
    entries[2]["request"]["ifMatch"] = 'W/"1"'
    assert post_bundle(client, "transaction", entries).status_code == 200
    assert client.get("/fhir/Patient/p1").json()["active"] is False
    assert client.get("/fhir/Patient/p3").status_code == 410


def test_transaction_refuses_two_writes_to_one_resource(client: TestClient) -> None:
    put_patient(client, "p1", active=True)
    entries = [
        call("DELETE", "Patient/p1"),
        call("PUT", "Patient/p1", {**patient(), "id": "p1", "active": False}),
    ]
    assert post_bundle(client, "transaction", entries).status_code == 400
    assert client.get("/fhir/Patient/p1").json()["meta"]["versionId"] == "1"


def test_transaction_conditional_update_refuses_a_different_body_id(client: TestClient) -> None:
    # http.html §3.1.0.4.3: a body id that differs from the match is a 400, in a
    # transaction as in a plain conditional update.
    put_patient(client, "p1", "m-1")
    body = {**patient("m-1"), "id": "someone-else"}
    response = post_bundle(
        client, "transaction", [call("PUT", f"Patient?identifier={SYS}|m-1", body)]
    )
    assert response.status_code == 400, response.text
    assert client.get("/fhir/Patient/someone-else").status_code == 404


def test_transaction_update_of_a_deleted_resource_is_a_create(client: TestClient) -> None:
    put_patient(client, "p1")
    client.delete("/fhir/Patient/p1")
    response = post_bundle(
        client, "transaction", [call("PUT", "Patient/p1", {**patient(), "id": "p1"})]
    )
    assert response.status_code == 200, response.text
    # A plain PUT answers 201 here (the resource did not exist); so must the entry.
    assert statuses(response) == ["201 Created"]


# --- batch ---------------------------------------------------------------------------


def test_batch_entries_succeed_or_fail_alone(client: TestClient) -> None:
    put_patient(client, "p1", name=[{"family": "Xavier"}])
    put_patient(client, "p2", name=[{"family": "Martin"}])
    entries = [
        create(patient("b1")),
        create(patient("b2", active="not-a-boolean")),
        call("GET", "Patient/p1"),
        call("GET", "Patient?name=xavier"),
        call("GET", "Patient/missing"),
    ]
    response = post_bundle(client, "batch", entries)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "batch-response"
    codes = [status.split()[0] for status in statuses(response)]
    assert codes == ["201", "400", "200", "200", "404"]
    failed = body["entry"][1]["response"]["outcome"]
    assert failed["resourceType"] == "OperationOutcome"
    assert body["entry"][4]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert body["entry"][2]["resource"]["id"] == "p1"
    searchset = body["entry"][3]["resource"]
    assert searchset["resourceType"] == "Bundle" and searchset["type"] == "searchset"
    assert [e["resource"]["id"] for e in searchset["entry"]] == ["p1"]
    assert total(client, "Patient") == 3  # p1, p2 and the one batch create


def test_batch_entries_do_not_share_placeholders(client: TestClient) -> None:
    pat_url = urn()
    entries = [create(patient("b1"), pat_url), create(observation(pat_url))]
    response = post_bundle(client, "batch", entries)
    assert response.status_code == 200
    codes = [status.split()[0] for status in statuses(response)]
    assert codes[0] == "201"
    assert total(client, "Patient") == 1


# --- limits and shape ----------------------------------------------------------------


@pytest.fixture
def small_client(settings: Settings) -> Iterator[TestClient]:
    from rempart.web import create_app

    limited = replace(settings, limits=LimitSettings(max_bundle_entries=3))
    with TestClient(create_app(limited), base_url="http://127.0.0.1") as test_client:
        test_client.headers.update(bearer(mint_token(settings, "http://127.0.0.1/fhir")))
        yield test_client


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_too_many_entries_is_413(small_client: TestClient, kind: str) -> None:
    entries = [create(patient(f"n{n}")) for n in range(4)]
    response = post_bundle(small_client, kind, entries)
    assert response.status_code == 413
    outcome_of(response)
    assert total(small_client, "Patient") == 0
    assert post_bundle(small_client, kind, entries[:3]).status_code == 200
    assert total(small_client, "Patient") == 3


def test_a_bundle_of_another_type_is_refused(client: TestClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    response = client.post("/fhir", content=json.dumps(bundle), headers={"content-type": FHIR})
    assert response.status_code == 400
    outcome_of(response)
