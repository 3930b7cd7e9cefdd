"""When the audit store cannot be written, a real server answers 503 and serves nothing
unaudited; when it can again, it records the outage and goes on (SQLite, PostgreSQL).

SQLite: the test holds the write lock on ``audit.db`` (``BEGIN EXCLUSIVE``); the
server's appends wait ``busy_timeout`` (10 s) and fail. PostgreSQL: the test renames
the audit table away; the appends fail at once.

What the server guarantees, and this test checks:

- a request that had already run when its events could not be committed (here, a
  PUT) is answered 503; its change stays applied (the resource store is not the audit
  store: there is no transaction across both), and its events are kept in memory and
  appended, late, right after the outage event once the store is back;
- while the store is known to be down, requests are refused with 503 before they run
  (a PUT then changes nothing), but for one a second that tries the store again;
- once the store is back, the first such try appends an ``audit-outage`` event and the
  service resumes; ``rempart audit verify`` passes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx
import psycopg
from audit_kit import run_verify, stored_events

from rempart.config import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

FHIR = {"content-type": "application/fhir+json"}


@contextmanager
def audit_unwritable(settings: Settings) -> Iterator[None]:
    if settings.storage.database_url is None:
        with sqlite_write_lock(settings):
            yield
        return
    schema = f"{settings.storage.postgres_schema}_audit"
    with psycopg.connect(settings.storage.database_url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {schema}.audit_event RENAME TO audit_event_x")
        try:
            yield
        finally:
            conn.execute(f"ALTER TABLE {schema}.audit_event_x RENAME TO audit_event")


@contextmanager
def sqlite_write_lock(settings: Settings) -> Iterator[None]:
    """Holds ``audit.db``'s write lock from another thread (sqlite3 connections stay in
    the thread that made them) until the block ends."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(settings.storage.data_dir / "audit.db", isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10), "could not lock audit.db"
        yield
    finally:
        release.set()
        holder.join(10)


def put(http: httpx.Client, id_: str, request_id: str) -> httpx.Response:
    body = {"resourceType": "Patient", "id": id_, "active": True}
    headers = {**FHIR, "x-request-id": request_id}
    return http.put(f"Patient/{id_}", content=json.dumps(body), headers=headers)


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text[:300]
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert answer.headers["retry-after"] == "5"


def test_an_unwritable_audit_refuses_with_503_then_recovers(
    server: ServerProcess, settings: Settings
) -> None:
    with httpx.Client(base_url=server.base + "/", headers=server.headers, timeout=60) as http:
        assert put(http, "before", "unavail-put-before").status_code == 201
        with audit_unwritable(settings):
            assert_refused(put(http, "during", "unavail-put-during"))
            # Known down now: refused before it runs (or, past a second, it is the
            # one try of the store, which fails too; it does not run either way).
            assert_refused(put(http, "refused", "unavail-put-refused"))
        deadline = time.monotonic() + 15
        while (answer := http.get("Patient/before")).status_code == 503:
            assert time.monotonic() < deadline, "the service did not resume"
            time.sleep(0.2)
        assert answer.status_code == 200
        assert http.get("Patient/during").status_code == 200  # ran, then answered 503
        assert http.get("Patient/refused").status_code == 404  # never ran
    server.stop()

    assert run_verify(settings)[0] == 0
    events = stored_events(settings)
    kinds = [event["subtype"][0]["code"] for _, event in events]
    assert kinds.count("audit-outage") == 1
    outage = kinds.index("audit-outage")
    ids = [request_id for request_id, _ in events]
    assert "unavail-put-before" in ids[:outage]
    assert ids[outage + 1] == "unavail-put-during", "the late events follow the outage event"
    assert "unavail-put-refused" not in ids
