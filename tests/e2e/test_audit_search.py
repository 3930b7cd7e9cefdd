"""``GET /fhir/AuditEvent`` through a real server process, on SQLite and PostgreSQL:
scripted traffic with a ``system/*.cruds`` token, then the audit searched with the
audit scope, counts checked exactly against what was done; the date range and the
scope enforced; nobody writes AuditEvent; reading the audit is itself audited."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from conftest import ServerProcess, bearer
from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.tokens import Grant, Tokens

FHIR = {"content-type": "application/fhir+json"}
AUDITOR = "rssi-console"


def audit_headers(server: ServerProcess, scopes: str = "system/rempart.audit") -> dict[str, str]:
    """A token of another backend client than the traffic's (``test-suite``), so that
    the audit searches do not count among the traffic searched for."""
    keys = SigningKeys(server.settings.storage.data_dir / "keys" / "signing-keys.json")
    grant = Grant(AUDITOR, AUDITOR, False, tuple(scopes.split()))
    return bearer(Tokens(keys, None, 3600).issue(grant, server.base, server.base, None))  # type: ignore[arg-type]


def today() -> list[tuple[str, str]]:
    now = datetime.now(UTC)
    low, high = now - timedelta(hours=1), now + timedelta(hours=1)
    return [("date", f"ge{low:%Y-%m-%dT%H:%M:%SZ}"), ("date", f"lt{high:%Y-%m-%dT%H:%M:%SZ}")]


class Auditor:
    def __init__(self, server: ServerProcess) -> None:
        self.server, self.headers, self.searches = server, audit_headers(server), 0

    def search(self, **params: str) -> dict[str, Any]:
        answer = self.get([*today(), *params.items()])
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def get(self, params: list[tuple[str, str]]) -> httpx.Response:
        self.searches += 1
        url = f"{self.server.base}/AuditEvent"
        return httpx.get(url, params=params, headers=self.headers, timeout=30)

    def all_pages(self, **params: str) -> list[dict[str, Any]]:
        bundle, found = self.search(**params), []
        while True:
            found += [entry["resource"] for entry in bundle.get("entry", [])]
            after = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            if not after:
                return found
            self.searches += 1
            answer = httpx.get(after[0], headers=self.headers, timeout=30)
            assert answer.status_code == 200, answer.text
            bundle = answer.json()


def traffic(server: ServerProcess) -> str:
    """Reads, a search, a 404 and a 401: what the audit must then show."""
    base, headers = server.base, {**server.headers, **FHIR}
    created = httpx.post(f"{base}/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert created.status_code == 201
    patient = created.json()["id"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "pulse"},
        "subject": {"reference": f"Patient/{patient}"},
    }
    assert httpx.post(f"{base}/Observation", json=observation, headers=headers).status_code == 201
    assert httpx.get(f"{base}/Patient/{patient}", headers=headers).status_code == 200
    found = httpx.get(f"{base}/Observation", params={"patient": patient}, headers=headers)
    assert found.status_code == 200 and found.json()["total"] == 1
    assert httpx.get(f"{base}/Patient/nobody", headers=headers).status_code == 404
    bad = {"authorization": "Bearer not-a-token"}
    assert httpx.get(f"{base}/Patient", headers=bad).status_code == 401
    return patient


def codes(events: list[dict[str, Any]]) -> list[str]:
    return sorted(event["subtype"][0]["code"] for event in events)


def test_the_audit_shows_exactly_what_was_done(server: ServerProcess) -> None:
    patient = traffic(server)
    auditor = Auditor(server)
    mine = auditor.all_pages(agent="test-suite")
    # create, create, read, search (+ one for its patient), read (404)
    assert codes(mine) == ["create", "create", "read", "read", "search-type", "search-type"]
    assert auditor.search(agent="test-suite")["total"] == 6
    theirs = auditor.all_pages(patient=f"Patient/{patient}")
    assert codes(theirs) == ["create", "create", "read", "search-type"]
    assert len(auditor.all_pages(patient=patient, subtype="read")) == 1
    failed = auditor.all_pages(outcome="4", subtype="read,search-type")
    assert [e["outcomeDesc"][:3] for e in failed] == ["401", "404"]  # newest first
    assert failed[0]["agent"][0]["who"] == {"display": "unauthenticated"}
    assert auditor.search(entity=f"Patient/{patient}", action="R")["total"] == 1


def test_pages_follow_each_other_to_the_end(server: ServerProcess) -> None:
    traffic(server)
    auditor = Auditor(server)
    paged = auditor.all_pages(agent="test-suite", _count="2")
    assert len(paged) == 6 and len({event["id"] for event in paged}) == 6
    ids = [int(event["id"]) for event in paged]
    assert ids == sorted(ids, reverse=True)
    oldest = auditor.all_pages(agent="test-suite", _count="4", _sort="date")
    assert [event["id"] for event in oldest] == [event["id"] for event in paged][::-1]
    first = auditor.search(agent="test-suite", _count="2", _total="accurate")
    assert first["total"] == 6 and len(first["entry"]) == 2
    one = first["entry"][0]
    read = httpx.get(one["fullUrl"], headers=auditor.headers, timeout=30)
    assert read.status_code == 200 and read.json() == one["resource"]
    assert read.json()["meta"]["versionId"] == "1"
    assert httpx.get(f"{server.base}/AuditEvent/999999", headers=auditor.headers).status_code == 404


def test_the_audit_is_guarded_and_its_reading_audited(server: ServerProcess) -> None:
    auditor = Auditor(server)
    base, clinical = server.base, {**server.headers, **FHIR}
    for params in (
        [],
        today()[:1],
        today()[1:],
        [("date", "ge2026-01-01"), ("date", "lt2026-03-01")],
    ):
        refused = auditor.get(params)
        assert refused.status_code == 400, params
        assert refused.json()["resourceType"] == "OperationOutcome"
    strict = {**auditor.headers, "prefer": "handling=strict"}
    unknown = [*today(), ("colour", "blue")]
    assert httpx.get(f"{base}/AuditEvent", params=unknown, headers=strict).status_code == 400
    lenient = auditor.get(unknown).json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    assert httpx.get(f"{base}/AuditEvent", params=today(), headers=clinical).status_code == 403
    user_wide = audit_headers(server, "system/*.cruds system/AuditEvent.rs")
    assert httpx.get(f"{base}/AuditEvent", params=today(), headers=user_wide).status_code == 403
    event = {"resourceType": "AuditEvent"}
    for headers in (clinical, {**auditor.headers, **FHIR}):
        assert httpx.post(f"{base}/AuditEvent", json=event, headers=headers).status_code == 405
        assert httpx.put(f"{base}/AuditEvent/1", json=event, headers=headers).status_code == 405
        assert httpx.delete(f"{base}/AuditEvent/1", headers=headers).status_code == 405
    entry = {"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [entry]}
    answer = httpx.post(base, json=batch, headers=clinical).json()
    assert answer["entry"][0]["response"]["status"].startswith("405")
    assert (
        httpx.get(f"{base}/", params={"_type": "AuditEvent"}, headers=clinical).status_code == 400
    )
    revinclude = {"_revinclude": "AuditEvent:patient"}
    assert httpx.get(f"{base}/Patient", params=revinclude, headers=clinical).status_code == 400
    searches = auditor.searches + 2  # and the strict one, and the one with other scopes
    seen = auditor.all_pages(agent=AUDITOR, subtype="search-type", _count="500")
    assert len(seen) == searches  # not the search that is running
    queries = [base64.b64decode(e["entity"][0]["query"]).decode() for e in seen]
    assert all(q.startswith("GET /fhir/AuditEvent") for q in queries)
    assert sum(e["outcome"] == "4" for e in seen) == 6  # five 400s, one 403
