"""Conditional create, update, delete and patch (FHIR R4 §3.1.0.4.3, .5, .6, .7.1),
through the real ASGI app and, for races, a real server process; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from conftest import ServerProcess

FHIR = "application/fhir+json"
SYS = "http://hospital.example/mrn"
CONDITION = f"identifier={SYS}|v"


def patient(mrn: str = "v", **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYS, "value": mrn}], **fields}


def put_patient(client: TestClient, id_: str, mrn: str = "v", **fields: Any) -> None:
    body = json.dumps({**patient(mrn, **fields), "id": id_})
    response = client.put(f"/fhir/Patient/{id_}", content=body, headers={"content-type": FHIR})
    assert response.status_code in (200, 201), response.text


def create_if_none_exist(client: TestClient, condition: str, **fields: Any) -> Any:
    headers = {"content-type": FHIR, "if-none-exist": condition}
    return client.post("/fhir/Patient", content=json.dumps(patient(**fields)), headers=headers)


def ids(client: TestClient, query: str = "") -> list[str]:
    bundle = client.get(f"/fhir/Patient?_count=100{query}").json()
    return sorted(entry["resource"]["id"] for entry in bundle.get("entry", []))


def outcome_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body  # type: ignore[no-any-return]


# --- create --------------------------------------------------------------------------


def test_conditional_create_creates_once(client: TestClient) -> None:
    first = create_if_none_exist(client, CONDITION, active=True)
    assert first.status_code == 201, first.text
    created = first.json()["id"]
    again = create_if_none_exist(client, CONDITION, active=False)
    assert again.status_code == 200
    assert again.json()["id"] == created and again.json()["active"] is True
    assert again.headers["etag"] == 'W/"1"'
    assert ids(client) == [created]


def test_conditional_create_with_two_matches_is_412(client: TestClient) -> None:
    put_patient(client, "a")
    put_patient(client, "b")
    response = create_if_none_exist(client, CONDITION)
    assert response.status_code == 412
    outcome_of(response)
    assert ids(client) == ["a", "b"]


def test_conditional_create_condition_is_strict(client: TestClient) -> None:
    put_patient(client, "a")
    response = create_if_none_exist(client, "no-such-parameter=1")
    assert response.status_code == 400
    outcome_of(response)
    assert create_if_none_exist(client, "").status_code == 400
    assert ids(client) == ["a"]


def test_concurrent_conditional_creates_make_one_resource(server: ServerProcess) -> None:
    barrier = threading.Barrier(8)
    headers = {"content-type": FHIR, "if-none-exist": CONDITION, **server.headers}
    body = json.dumps(patient())

    def attempt(_: int) -> tuple[int, str]:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            response = http.post(f"{server.base}/Patient", content=body, headers=headers)
            return response.status_code, response.json().get("id", "")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert sorted(code for code, _ in answers).count(201) == 1, answers
    assert {code for code, _ in answers} <= {200, 201}, answers
    assert len({id_ for _, id_ in answers}) == 1
    query = f"{server.base}/Patient?identifier={SYS}|v&_total=accurate"
    found = httpx.get(query, headers=server.headers).json()
    assert found["total"] == 1


# --- update --------------------------------------------------------------------------


def conditional_put(client: TestClient, resource: dict[str, Any], query: str = CONDITION) -> Any:
    return client.put(
        f"/fhir/Patient?{query}", content=json.dumps(resource), headers={"content-type": FHIR}
    )


def test_conditional_update_without_match_creates(client: TestClient) -> None:
    response = conditional_put(client, patient(active=True))
    assert response.status_code == 201, response.text
    assert response.headers["etag"] == 'W/"1"'
    assert ids(client) == [response.json()["id"]]


def test_conditional_update_with_one_match_updates_it(client: TestClient) -> None:
    put_patient(client, "a", active=True)
    put_patient(client, "other", "w")
    response = conditional_put(client, patient(active=False))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "a" and response.headers["etag"] == 'W/"2"'
    assert client.get("/fhir/Patient/a").json()["active"] is False
    assert client.get("/fhir/Patient/other").json()["meta"]["versionId"] == "1"
    same_id = conditional_put(client, {**patient(active=True), "id": "a"})
    assert same_id.status_code == 200 and same_id.headers["etag"] == 'W/"3"'


def test_conditional_update_with_two_matches_is_412(client: TestClient) -> None:
    put_patient(client, "a")
    put_patient(client, "b")
    response = conditional_put(client, patient(active=False))
    assert response.status_code == 412
    outcome_of(response)
    assert client.get("/fhir/Patient/a").json()["meta"]["versionId"] == "1"


def test_conditional_update_refuses_a_different_body_id(client: TestClient) -> None:
    put_patient(client, "a")
    response = conditional_put(client, {**patient(active=False), "id": "b"})
    assert response.status_code == 400
    outcome_of(response)
    assert ids(client) == ["a"]
    assert client.get("/fhir/Patient/a").json()["meta"]["versionId"] == "1"


def test_conditional_update_condition_is_strict(client: TestClient) -> None:
    put_patient(client, "a")
    response = conditional_put(client, patient(active=False), query="bogus=1")
    assert response.status_code == 400
    assert client.get("/fhir/Patient/a").json()["meta"]["versionId"] == "1"


# --- delete --------------------------------------------------------------------------


def test_conditional_delete_with_one_match(client: TestClient) -> None:
    put_patient(client, "a")
    put_patient(client, "keep", "w")
    assert client.delete(f"/fhir/Patient?{CONDITION}").status_code == 204
    assert client.get("/fhir/Patient/a").status_code == 410
    assert client.get("/fhir/Patient/keep").status_code == 200


def test_conditional_delete_without_match_is_204(client: TestClient) -> None:
    put_patient(client, "keep", "w")
    assert client.delete(f"/fhir/Patient?{CONDITION}").status_code == 204
    assert ids(client) == ["keep"]


def test_conditional_delete_with_two_matches_is_412(client: TestClient) -> None:
    put_patient(client, "a")
    put_patient(client, "b")
    response = client.delete(f"/fhir/Patient?{CONDITION}")
    assert response.status_code == 412
    outcome_of(response)
    assert ids(client) == ["a", "b"]


# --- patch ---------------------------------------------------------------------------


def test_conditional_fhirpath_patch(client: TestClient) -> None:
    put_patient(client, "a", birthDate="1970-01-01")
    put_patient(client, "other", "w", birthDate="1970-01-01")
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.birthDate"},
                    {"name": "value", "valueDate": "1980-02-02"},
                ],
            }
        ],
    }
    response = client.patch(
        f"/fhir/Patient?{CONDITION}", content=json.dumps(params), headers={"content-type": FHIR}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "a" and response.headers["etag"] == 'W/"2"'
    assert client.get("/fhir/Patient/a").json()["birthDate"] == "1980-02-02"
    assert client.get("/fhir/Patient/other").json()["birthDate"] == "1970-01-01"


def test_conditional_json_patch(client: TestClient) -> None:
    put_patient(client, "a", active=True)
    ops = json.dumps([{"op": "replace", "path": "/active", "value": False}])
    headers = {"content-type": "application/json-patch+json"}
    response = client.patch(f"/fhir/Patient?{CONDITION}", content=ops, headers=headers)
    assert response.status_code == 200, response.text
    assert client.get("/fhir/Patient/a").json()["active"] is False
    missing = client.patch(f"/fhir/Patient?identifier={SYS}|nobody", content=ops, headers=headers)
    assert missing.status_code == 404
    put_patient(client, "b")
    several = client.patch(f"/fhir/Patient?{CONDITION}", content=ops, headers=headers)
    assert several.status_code == 412
