"""Audit capture end to end: a scripted session of mixed traffic against a real server
process (reads, searches, writes, a 404, bad tokens, a scope refusal, rate-limited
calls, token requests), then the audit store is read back and must hold exactly the
events that session implies, per patient, per outcome and per request; ``rempart audit
verify`` passes; then a byte of one record is changed in the database file (SQLite) or
in the row (PostgreSQL) and verification names that record."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from audit_kit import run_verify

from conftest import ServerProcess, bearer, mint_token
from rempart.config import Settings
from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.tokens import Grant, Tokens
from rempart.storage.open_audit import open_audit_store

CLIENT_BUDGET = 100
"""Cost units per minute per client: the greedy client below overspends it."""
GREEDY_READS = 110


def other_client_token(settings: Settings, base: str, client: str, scopes: str) -> str:
    keys = SigningKeys(settings.storage.data_dir / "keys" / "signing-keys.json")
    grant = Grant(client, client, False, tuple(scopes.split()))
    return Tokens(keys, None, 3600).issue(grant, base, base, None)  # type: ignore[arg-type]


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerProcess]:
    env = {
        "REMPART_RATELIMIT_ENABLED": "1",
        "REMPART_RATELIMIT_CLIENT_PER_MINUTE": str(CLIENT_BUDGET),
        "REMPART_RATELIMIT_IP_PER_MINUTE": "100000",
        "REMPART_RATELIMIT_AUTH_PER_MINUTE": "1000",
    }
    process = ServerProcess(settings, env=env).start()
    try:
        yield process
    finally:
        process.stop()


class Session:
    """Sends requests with a request id of its own and remembers what it expects."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = httpx.Client(timeout=30)
        self.base = server.base
        self.sent: dict[str, int] = {}
        self.counter = 0

    def call(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        self.counter += 1
        request_id = f"session-{self.counter:06d}"
        headers = {**headers, "x-request-id": request_id}
        response = self.http.request(method, f"{self.base}/{path}", headers=headers, **kw)
        assert response.headers["x-request-id"] == request_id
        self.sent[request_id] = response.status_code
        return response


def patient(id_: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, "name": [{"family": "Audit", "given": [id_]}]}


def observation(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org"},
    }


def transaction() -> dict[str, Any]:
    """A new patient and an observation of it, linked by a temporary id."""
    new = "urn:uuid:2f1e7c7a-0000-4000-8000-000000000001"
    obs = observation("x") | {"subject": {"reference": new}}
    new_patient = {"resourceType": "Patient", "active": True}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": new, "resource": new_patient, "request": post("Patient")},
            {"resource": obs, "request": post("Observation")},
        ],
    }


def post(type_: str) -> dict[str, str]:
    return {"method": "POST", "url": type_}


def play(server: ServerProcess, settings: Settings) -> tuple[Session, Counter[str], str]:
    """The scripted session; the patient counts it implies (events naming each)."""
    s = Session(server)
    auth = bearer(mint_token(settings, server.base))
    expected: Counter[str] = Counter()
    for id_ in ("pa", "pb", "pc"):
        assert s.call("PUT", f"Patient/{id_}", auth, json=patient(id_)).status_code == 201
        expected[id_] += 1
    for id_ in ("pa", "pa", "pb"):
        assert s.call("POST", "Observation", auth, json=observation(id_)).status_code == 201
        expected[id_] += 1
    assert s.call("GET", "Patient/pa", auth).status_code == 200
    expected["pa"] += 1
    assert s.call("GET", "Observation?subject=Patient/pa", auth).status_code == 200
    expected["pa"] += 1  # one for the query, one for pa
    assert s.call("GET", "Observation", auth).status_code == 200
    expected.update(["pa", "pb"])
    assert s.call("GET", "Patient?_count=10", auth).status_code == 200
    expected.update(["pa", "pb", "pc"])
    assert s.call("GET", "Patient/nope", auth).status_code == 404
    expected["nope"] += 1
    assert s.call("GET", "Patient/pb", bearer("not-a-token")).status_code == 401
    expected["pb"] += 1
    narrow = bearer(other_client_token(settings, server.base, "narrow", "system/Observation.rs"))
    assert s.call("GET", "Patient/pc", narrow).status_code == 403
    expected["pc"] += 1
    assert s.call("POST", "Patient", auth, content=b"{not json").status_code == 400
    greedy = bearer(other_client_token(settings, server.base, "greedy", "system/*.rs"))
    statuses = Counter(s.call("GET", "Patient/pa", greedy).status_code for _ in range(GREEDY_READS))
    assert statuses[429] >= GREEDY_READS - CLIENT_BUDGET
    expected["pa"] += GREEDY_READS
    assert s.call("GET", "Patient/pa/$everything", auth).status_code == 200
    expected["pa"] += 1  # the operation's event, and one for pa
    assert s.call("GET", "Observation/_history", auth).status_code == 200
    expected.update(["pa", "pb"])
    answer = s.call("POST", "", auth, json=transaction()).json()
    created = answer["entry"][0]["response"]["location"].split("/")[1]
    expected[created] += 1  # the Bundle's event, and one for the patient it created
    token_url = server.base.removesuffix("/fhir") + "/auth/token"
    form = {"grant_type": "client_credentials", "client_assertion": "x.y.z", "scope": "x"}
    refused = s.http.post(token_url, data=form, headers={"x-request-id": "session-token-1"})
    assert refused.status_code in (400, 401)
    s.sent["session-token-1"] = refused.status_code
    admin = s.http.get(
        token_url.replace("/auth/token", "/admin/clients"),
        headers={**auth, "x-request-id": "session-admin-1"},
    )
    assert admin.status_code == 403
    s.sent["session-admin-1"] = 403
    return s, expected, auth["authorization"]


async def stored(settings: Settings) -> list[tuple[int, bytes, dict[str, Any]]]:
    store = await open_audit_store(settings, None, create=False)
    try:
        return [(r.seq, r.body, orjson.loads(r.body)) async for r in store.records()]
    finally:
        await store.close()


def request_id(event: dict[str, Any]) -> str:
    for entity in event.get("entity", []):
        if entity.get("type", {}).get("code") == "XrequestId":
            return str(entity["what"]["identifier"]["value"])
    raise AssertionError(f"no request id in {event}")


def patients(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["reference"].split("/")[1]
        for e in event.get("entity", [])
        if e.get("type", {}).get("code") == "1"
    ]


def test_a_session_is_recorded_exactly(server: ServerProcess, settings: Settings) -> None:
    session, expected, authorization = play(server, settings)
    session.http.close()
    server.stop()
    records = asyncio.run(stored(settings))
    events = [event for _, _, event in records]

    # every request of the session, and nothing else, has events; outcomes match
    by_request: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_request.setdefault(request_id(event), []).append(event)
    assert set(by_request) == set(session.sent)
    for rid, status in session.sent.items():
        for event in by_request[rid]:
            assert event["outcomeDesc"].split(" ")[0] == str(status)
            assert event["outcome"] == ("0" if status < 400 else "4")

    # per patient: exactly the events the session implies
    assert Counter(p for e in events for p in patients(e)) == expected
    assert all(len(patients(e)) <= 1 for e in events)

    # a search gives one event for the query and one per patient found
    search = by_request["session-000010"]  # GET Patient?_count=10
    assert sorted(p for e in search for p in patients(e)) == ["pa", "pb", "pc"]
    assert len(search) == 4
    query = next(e for e in search if not patients(e))
    text = base64.b64decode(next(x["query"] for x in query["entity"] if "query" in x))
    assert text == b"GET /fhir/Patient?_count=10"

    # who, from where, what
    read = by_request["session-000007"][0]  # GET Patient/pa
    assert read["subtype"][0]["code"] == "read" and read["action"] == "R"
    assert read["agent"][0]["who"]["identifier"]["value"] == "test-suite"
    assert read["agent"][0]["network"]["address"] == "127.0.0.1"
    unauthenticated = by_request["session-000012"][0]
    assert unauthenticated["agent"][0]["who"] == {"display": "unauthenticated"}
    assert Counter(e["outcomeDesc"][:3] for e in events)["429"] >= GREEDY_READS - CLIENT_BUDGET
    token = by_request["session-token-1"][0]
    assert token["subtype"][0]["code"] == "token"
    assert "invalid_client" in token["outcomeDesc"]  # the reason the caller did not get
    admin = by_request["session-admin-1"][0]
    assert (admin["subtype"][0]["code"], admin["action"], admin["outcome"]) == (
        "admin-read",
        "R",
        "4",
    )

    # never the data, a token or an assertion
    for _, body, _ in records:
        assert authorization.split(" ")[1].encode() not in body
        assert b"Bearer" not in body and b"x.y.z" not in body
        assert b"8867-4" not in body and b'"family"' not in body

    # the chain holds, then one changed byte is named
    assert run_verify(settings) == (0, {"ok": True, "records": len(records), "checkpoints": 1})
    target = next(seq for seq, _, e in records if request_id(e) == "session-000007")
    change_one_byte(settings, target, b'"value":"session-000007"')
    code, verdict = run_verify(settings)
    assert code == 1 and verdict["first_bad"] == target


def change_one_byte(settings: Settings, seq: int, marker: bytes) -> None:
    """In the SQLite file itself (WAL folded in first), or in the PostgreSQL row."""
    if settings.storage.database_url is None:
        path = settings.storage.data_dir / "audit.db"
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        data = bytearray(path.read_bytes())
        at = data.find(marker)
        assert at > 0 and data.find(marker, at + 1) == -1
        data[at + len(marker) - 1] ^= 0x01
        path.write_bytes(bytes(data))
        return
    schema = f"{settings.storage.postgres_schema}_audit"
    with psycopg.connect(settings.storage.database_url) as conn:
        conn.execute(
            f"UPDATE {schema}.audit_event SET body = convert_to(replace("
            "convert_from(body, 'UTF8'), %s, %s), 'UTF8') WHERE seq = %s",
            (marker.decode(), marker.decode()[:-1] + "6", seq),
        )


def test_hostile_names_are_recorded_without_stopping_the_audit(
    server: ServerProcess, settings: Settings
) -> None:
    """A claimed client id with a lone surrogate or a NUL (in an unverified assertion, a
    form, a path) must be recorded, and must not make the append fail for everyone."""

    def segment(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    claims = '{"iss":"\\ud800ev\\u0000il"}'
    assertion = ".".join([segment('{"alg":"RS384"}'), segment(claims), segment("sig")])
    token_url = server.base.removesuffix("/fhir") + "/auth/token"
    form = {"grant_type": "client_credentials", "client_assertion": assertion}
    with httpx.Client(timeout=30) as http:
        assert http.post(token_url, data=form).status_code in (400, 401)
        assert http.post(token_url, data={"client_id": "a\x00b"}).status_code in (400, 401)
        auth = bearer(mint_token(settings, server.base))
        assert http.get(f"{server.base}/Patient/%00", headers=auth).status_code in (400, 404)
        assert http.get(f"{server.base}/Patient", headers=auth).status_code == 200
    server.stop()
    clients = [
        e["agent"][0]["who"].get("identifier", {}).get("value")
        for _, _, e in asyncio.run(stored(settings))
    ]
    assert "?ev\x00il" in clients and "a\x00b" in clients
    assert run_verify(settings)[0] == 0
