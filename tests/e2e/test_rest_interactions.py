"""The FHIR REST interactions through the real ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

FHIR = "application/fhir+json"
OBS = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "valueQuantity": {"value": 72.50, "unit": "/min"},
}


def put(client: TestClient, path: str, resource: dict[str, Any], **headers: str) -> Any:
    return client.put(
        f"/fhir/{path}", content=json.dumps(resource), headers={"content-type": FHIR, **headers}
    )


def patient(id_: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, **fields}


def outcome_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body  # type: ignore[no-any-return]


def test_create_assigns_id_and_version_and_keeps_decimals(client: TestClient) -> None:
    sent = json.dumps({**OBS, "id": "client-chosen"}).replace("72.5", "72.50")
    response = client.post("/fhir/Observation", content=sent, headers={"content-type": FHIR})
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen" and body["meta"]["versionId"] == "1"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/fhir/Observation/{body['id']}/_history/1")
    assert "last-modified" in response.headers
    assert b'"value":72.50' in response.content
    read = client.get(f"/fhir/Observation/{body['id']}")
    assert read.status_code == 200 and read.content == response.content
    assert json.loads(read.content, parse_float=Decimal)["valueQuantity"]["value"] == Decimal(
        "72.50"
    )


def test_update_creates_then_versions(client: TestClient) -> None:
    created = put(client, "Patient/p1", patient("p1", active=True))
    assert created.status_code == 201
    updated = put(client, "Patient/p1", patient("p1", active=False))
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    assert client.get("/fhir/Patient/p1").json()["active"] is False
    first = client.get("/fhir/Patient/p1/_history/1")
    assert first.status_code == 200 and first.json()["active"] is True
    assert client.get("/fhir/Patient/p1/_history/9").status_code == 404


def test_update_refuses_mismatched_id_and_type(client: TestClient) -> None:
    assert (
        outcome_of(put(client, "Patient/p1", patient("other")))
        and put(client, "Patient/p1", patient("other")).status_code == 400
    )
    assert put(client, "Patient/p1", {"resourceType": "Patient"}).status_code == 400
    assert put(client, "Observation/p1", patient("p1")).status_code == 400


def test_if_match_guards_updates(client: TestClient) -> None:
    put(client, "Patient/p1", patient("p1"))
    stale = put(client, "Patient/p1", patient("p1", active=True), **{"if-match": 'W/"7"'})
    assert stale.status_code == 412 and outcome_of(stale)
    fresh = put(client, "Patient/p1", patient("p1", active=True), **{"if-match": 'W/"1"'})
    assert fresh.status_code == 200
    assert put(client, "Patient/p1", patient("p1"), **{"if-match": "garbage"}).status_code == 400


def test_conditional_reads(client: TestClient) -> None:
    created = put(client, "Patient/p1", patient("p1"))
    assert client.get("/fhir/Patient/p1", headers={"if-none-match": 'W/"1"'}).status_code == 304
    assert client.get("/fhir/Patient/p1", headers={"if-none-match": 'W/"0"'}).status_code == 200
    assert client.get("/fhir/Patient/p1", headers={"if-none-match": "*"}).status_code == 304
    listed = 'W/"0", W/"1"'
    assert client.get("/fhir/Patient/p1", headers={"if-none-match": listed}).status_code == 304
    later = created.headers["last-modified"]
    assert client.get("/fhir/Patient/p1", headers={"if-modified-since": later}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get("/fhir/Patient/p1", headers={"if-modified-since": old}).status_code == 200


def test_delete_then_gone_then_recreated(client: TestClient) -> None:
    put(client, "Patient/p1", patient("p1"))
    assert client.delete("/fhir/Patient/p1").status_code == 204
    gone = client.get("/fhir/Patient/p1")
    assert gone.status_code == 410 and outcome_of(gone)
    assert client.delete("/fhir/Patient/p1").status_code == 204
    assert client.delete("/fhir/Patient/never").status_code == 204
    assert put(client, "Patient/p1", patient("p1")).json()["meta"]["versionId"] == "3"


def test_prefer_return(client: TestClient) -> None:
    minimal = put(client, "Patient/p1", patient("p1"), prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["etag"]
    oo = put(client, "Patient/p1", patient("p1"), prefer="return=OperationOutcome")
    assert outcome_of(oo)["issue"][0]["severity"] == "information"
    full = put(client, "Patient/p1", patient("p1"), prefer="return=representation")
    assert full.json()["resourceType"] == "Patient"


def test_json_patch_and_fhirpath_patch(client: TestClient) -> None:
    put(client, "Patient/p1", patient("p1", active=True, birthDate="1970-01-01"))
    ops = [{"op": "replace", "path": "/active", "value": False}]
    response = client.patch(
        "/fhir/Patient/p1",
        content=json.dumps(ops),
        headers={"content-type": "application/json-patch+json"},
    )
    assert response.status_code == 200 and response.json()["active"] is False
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
        "/fhir/Patient/p1", content=json.dumps(params), headers={"content-type": FHIR}
    )
    assert response.status_code == 200, response.text
    assert response.json()["birthDate"] == "1980-02-02" and response.headers["etag"] == 'W/"3"'


def test_patch_producing_invalid_resource_is_422_and_changes_nothing(client: TestClient) -> None:
    put(client, "Patient/p1", patient("p1", active=True))
    ops = [{"op": "replace", "path": "/active", "value": "not-a-boolean"}]
    response = client.patch(
        "/fhir/Patient/p1",
        content=json.dumps(ops),
        headers={"content-type": "application/json-patch+json"},
    )
    assert response.status_code == 422 and outcome_of(response)
    ops = [{"op": "replace", "path": "/id", "value": "other"}]
    response = client.patch(
        "/fhir/Patient/p1",
        content=json.dumps(ops),
        headers={"content-type": "application/json-patch+json"},
    )
    assert response.status_code == 422
    assert client.get("/fhir/Patient/p1").json()["meta"]["versionId"] == "1"


def test_history_paging_with_signed_cursor(client: TestClient) -> None:
    for n in range(5):
        put(client, f"Patient/h{n}", patient(f"h{n}"))
    page = client.get("/fhir/Patient/_history?_count=2").json()
    assert page["type"] == "history" and len(page["entry"]) == 2
    seen = [e["fullUrl"] for e in page["entry"]]
    while nxt := [link["url"] for link in page["link"] if link["relation"] == "next"]:
        page = client.get(nxt[0]).json()
        seen += [e["fullUrl"] for e in page["entry"]]
    assert len(seen) == len(set(seen)) == 5
    first = client.get("/fhir/Patient/_history?_count=2").json()
    cursor_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    tampered = cursor_url[:-3] + ("AAA" if not cursor_url.endswith("AAA") else "BBB")
    assert client.get(tampered).status_code == 400
    moved = cursor_url.replace("/Patient/_history", "/Observation/_history")
    assert client.get(moved).status_code == 400


def test_history_entries_and_filters(client: TestClient) -> None:
    put(client, "Patient/p1", patient("p1"))
    put(client, "Patient/p1", patient("p1", active=True))
    client.delete("/fhir/Patient/p1")
    history = client.get("/fhir/Patient/p1/_history").json()
    methods = [e["request"]["method"] for e in history["entry"]]
    assert methods == ["DELETE", "PUT", "PUT"]
    assert [e["response"]["status"] for e in history["entry"]] == [
        "204 No Content",
        "200 OK",
        "201 Created",
    ]
    created = client.post(
        "/fhir/Patient", content=b'{"resourceType":"Patient"}', headers={"content-type": FHIR}
    ).json()["id"]
    client.patch(
        f"/fhir/Patient/{created}",
        content=b'[{"op":"add","path":"/active","value":true}]',
        headers={"content-type": "application/json-patch+json"},
    )
    entries = client.get(f"/fhir/Patient/{created}/_history").json()["entry"]
    assert [(e["request"]["method"], e["request"]["url"]) for e in entries] == [
        ("PATCH", f"Patient/{created}"),
        ("POST", "Patient"),
    ]
    assert "resource" not in history["entry"][0]
    assert client.get("/fhir/_history?_since=2999-01-01").json()["entry"] == []
    assert len(client.get("/fhir/_history?_since=2000").json()["entry"]) == 5
    assert client.get("/fhir/_history?_since=yesterday").status_code == 400
    assert client.get("/fhir/_history?_at=2000-01").json()["entry"] == []
    assert client.get("/fhir/_history?_count=x").status_code == 400
    assert client.get("/fhir/_history?name=x").status_code == 400
    assert client.get("/fhir/Patient/never-was/_history").status_code == 404


def test_bad_input_gets_operation_outcomes(client: TestClient) -> None:
    cases = [
        (client.post("/fhir/Patient", content=b"{bad", headers={"content-type": FHIR}), 400),
        (client.post("/fhir/Patient", content=b"", headers={"content-type": FHIR}), 400),
        (
            client.post(
                "/fhir/Patient",
                content=b'{"resourceType":"Patient","foo":1}',
                headers={"content-type": FHIR},
            ),
            400,
        ),
        (client.post("/fhir/Nope", content=b"{}", headers={"content-type": FHIR}), 404),
        (
            client.post(
                "/fhir/Patient",
                content=b"<Patient/>",
                headers={"content-type": "application/fhir+xml"},
            ),
            415,
        ),
        (client.get("/fhir/Patient/x", headers={"accept": "application/fhir+xml"}), 406),
        (client.get("/fhir/Patient/x?_format=xml"), 406),
        (client.get("/fhir/Patient/x%20y"), 400),
        (client.get("/fhir/Patient/missing"), 404),
        (client.get("/fhir/a/b/c/d/e"), 404),
        (client.post("/fhir/Patient/x", content=b"{}"), 405),
        (
            client.post("/fhir/Patient", content=b"{}", headers={"if-none-exist": "identifier=x"}),
            400,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert outcome_of(response)["issue"][0]["severity"] == "error"


def test_body_size_limit_gives_413(client: TestClient) -> None:
    huge = b'{"resourceType":"Patient","text":"' + b"x" * (5 * 1024 * 1024) + b'"}'
    response = client.post("/fhir/Patient", content=huge, headers={"content-type": FHIR})
    assert response.status_code == 413 and outcome_of(response)


def test_validation_errors_do_not_echo_input(client: TestClient) -> None:
    marker = "<script>MARKER-42</script>"
    bad = {"resourceType": "Patient", "gender": marker, "birthDate": marker}
    response = client.post("/fhir/Patient", content=json.dumps(bad), headers={"content-type": FHIR})
    assert response.status_code == 400
    assert "MARKER-42" not in response.text and "<script>" not in response.text
    assert any(i.get("expression") == ["Patient.birthDate"] for i in outcome_of(response)["issue"])
    bad_code = {"resourceType": "Patient", "gender": marker}
    response = client.post(
        "/fhir/Patient", content=json.dumps(bad_code), headers={"content-type": FHIR}
    )
    assert response.status_code == 400 and "MARKER-42" not in response.text
    assert any(i.get("expression") == ["Patient.gender"] for i in outcome_of(response)["issue"])


def test_metadata_lists_what_works(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    assert statement["fhirVersion"] == "4.0.1"
    resources = statement["rest"][0]["resource"]
    assert len(resources) == 146
    patient_entry = next(r for r in resources if r["type"] == "Patient")
    codes = {i["code"] for i in patient_entry["interaction"]}
    assert codes == {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
    assert patient_entry["conditionalCreate"] is True
    assert patient_entry["conditionalDelete"] == "single"
    system = {i["code"] for i in statement["rest"][0]["interaction"]}
    assert system == {"history-system", "search-system", "batch", "transaction"}
    params = {p["name"]: p["type"] for p in patient_entry["searchParam"]}
    assert params["birthdate"] == "date" and params["_id"] == "token"
    assert [op["name"] for op in patient_entry["operation"]] == ["everything"]
    audit = next(r for r in resources if r["type"] == "AuditEvent")  # the audit trail's
    assert [i["code"] for i in audit["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in audit["searchParam"]} >= {"date", "patient", "agent", "entity"}
    assert client.post("/fhir/AuditEvent", json={"resourceType": "AuditEvent"}).status_code == 405
    location = next(r for r in resources if r["type"] == "Location")
    # Location.near is special (geographic), not indexed: not advertised.
    assert "near" not in {p["name"] for p in location["searchParam"]}


def test_security_headers_and_health(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    for path in ("/healthz", "/fhir/metadata", "/fhir/Patient/none"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert "server" not in headers
        assert len(headers["x-request-id"]) >= 8
    echoed = client.get("/healthz", headers={"x-request-id": "abc-12345678"})
    assert echoed.headers["x-request-id"] == "abc-12345678"
    assert (
        client.get("/healthz", headers={"x-request-id": "bad id\x01"}).headers["x-request-id"]
        != "bad id"
    )


def test_json_patch_keeps_decimal_precision(client: TestClient) -> None:
    created = client.post(
        "/fhir/Observation", content=json.dumps(OBS), headers={"content-type": FHIR}
    )
    id_ = created.json()["id"]
    ops = b'[{"op":"replace","path":"/valueQuantity/value","value":98.60}]'
    response = client.patch(
        f"/fhir/Observation/{id_}",
        content=ops,
        headers={"content-type": "application/json-patch+json"},
    )
    assert response.status_code == 200 and b'"value":98.60' in response.content


def test_only_requests_naming_this_server_are_served(client: TestClient) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not reach the API.
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", ""):
        answer = client.get("/fhir/metadata", headers={"host": host})
        assert answer.status_code == 400 and outcome_of(answer)
        assert "evil" not in answer.text
    for host in ("127.0.0.1", "127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"):
        assert client.get("/fhir/metadata", headers={"host": host}).status_code == 200
    assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 400
