"""Encryption at rest through a real ``rempart serve`` process, on SQLite and PostgreSQL.

What is proved: a resource's content never reaches the database files in clear
(the files themselves are searched, WAL included); the key ring file is private;
a flipped ciphertext byte or a body moved to another row is refused as an
integrity failure; and ``rempart keys rotate`` re-encrypts every row while the
server keeps accepting writes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from rempart.config import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

FHIR = {"content-type": "application/fhir+json"}
IN_CI = os.environ.get("CI", "").lower() == "true"
WAL_NAME = re.compile(r"[0-9A-F]{24}")
Key = tuple[str, str]


# --- resources ---------------------------------------------------------------------------


INS = "urn:oid:1.2.250.1.213.1.4.8"


def patient(id_: str, marker: str, given: str = "Ada") -> dict[str, Any]:
    """The marker sits where no search parameter reads it (a contact's name) and in an
    INS, which the search index holds only as a keyed hash (docs/threat-model.md: other
    searchable values, such as the patient's own name, are indexed in clear)."""
    return {
        "resourceType": "Patient",
        "id": id_,
        "identifier": [{"system": INS, "value": f"ins-{marker}"}],
        "name": [{"family": "Lovelace", "given": [given]}],
        "contact": [{"name": {"family": marker}}],
    }


def observation(id_: str, marker: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"text": "heart rate"},
        "note": [{"text": f"seen by {marker}"}],
    }


def put(http: httpx.Client, resource: dict[str, Any]) -> httpx.Response:
    path = f"{resource['resourceType']}/{resource['id']}"
    return http.put(path, content=json.dumps(resource), headers=FHIR)


def without_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


def seed(http: httpx.Client, marker: str) -> dict[Key, list[dict[str, Any]]]:
    """A patient with three versions and an observation; every version sent, by key."""
    pid, oid = f"p-{secrets.token_hex(6)}", f"o-{secrets.token_hex(6)}"
    sent: dict[Key, list[dict[str, Any]]] = {("Patient", pid): [], ("Observation", oid): []}
    for resource in (
        patient(pid, marker, "Ada"),
        patient(pid, marker, "Bea"),
        patient(pid, marker, "Cy"),
        observation(oid, marker),
    ):
        assert put(http, resource).status_code in (200, 201)
        sent[(resource["resourceType"], resource["id"])].append(resource)
    return sent


def sent_ids(sent: dict[Key, list[dict[str, Any]]], type_: str) -> str:
    return next(id_ for kind, id_ in sent if kind == type_)


def every_version(http: httpx.Client) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Every stored version, each decrypted by the server: system history, page by page."""
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    url: str | None = "_history?_count=500"
    while url is not None:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            found[
                (resource["resourceType"], resource["id"], int(resource["meta"]["versionId"]))
            ] = without_meta(resource)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return found


def assert_reads_back(http: httpx.Client, sent: dict[Key, list[dict[str, Any]]]) -> None:
    expected = {
        (type_, id_, number): resource
        for (type_, id_), versions in sent.items()
        for number, resource in enumerate(versions, start=1)
    }
    assert every_version(http) == expected
    for (type_, id_), versions in sent.items():
        if len(versions) > 2:  # the seeded ones: read and vread too
            assert without_meta(http.get(f"{type_}/{id_}").json()) == versions[-1]
            assert without_meta(http.get(f"{type_}/{id_}/_history/1").json()) == versions[0]


@pytest.fixture
def marker() -> str:
    return f"zqmark{secrets.token_hex(12)}"


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base + "/", headers=server.headers, timeout=10) as client:
        yield client


# --- direct database access (what an attacker with the files, or a DBA, can do) ----------


class Table:
    """The ``resource_version`` rows, read and altered beneath the server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pg = settings.storage.database_url is not None
        schema = f"{settings.storage.postgres_schema}." if self.pg else ""
        self.name = f"{schema}resource_version"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("TABLE", self.name)
        if self.pg:
            with psycopg.connect(self.settings.storage.database_url or "", autocommit=True) as conn:
                cursor = conn.execute(sql.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        db = self.settings.storage.data_dir / "rempart.db"
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            return conn.execute(sql, params).fetchall()

    def key_ids(self) -> Counter[str]:
        rows = self.query("SELECT key_id FROM TABLE WHERE body IS NOT NULL")
        return Counter(str(row[0]) for row in rows)

    def sealed(self, type_: str, id_: str, version: int) -> tuple[str, bytes]:
        sql = "SELECT key_id, body FROM TABLE WHERE type = ? AND id = ? AND version = ?"
        [(key_id, blob)] = self.query(sql, (type_, id_, version))
        return str(key_id), bytes(blob)

    def store(self, type_: str, id_: str, version: int, key_id: str, blob: bytes) -> None:
        self.query(
            "UPDATE TABLE SET key_id = ?, body = ? WHERE type = ? AND id = ? AND version = ?",
            (key_id, blob, type_, id_, version),
        )


def files_containing(needle: bytes, paths: list[Path]) -> list[str]:
    return [str(path) for path in paths if needle in path.read_bytes()]


def sqlite_files(settings: Settings) -> list[Path]:
    return [path for path in settings.storage.data_dir.rglob("*") if path.is_file()]


def pg_files(settings: Settings, wal_start: str) -> list[Path]:
    """The table's heap and TOAST files and the WAL segments written since ``wal_start``."""
    table = f"{settings.storage.postgres_schema}.resource_version"
    with psycopg.connect(settings.storage.database_url or "", autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        data_dir = Path(str(conn.execute("SHOW data_directory").fetchone()[0]))  # type: ignore[index]
        relations = conn.execute(
            "SELECT pg_relation_filepath(c.oid), pg_relation_filepath(c.reltoastrelid), "
            "pg_walfile_name(pg_current_wal_lsn()) FROM pg_class c WHERE c.oid = %s::regclass",
            (table,),
        ).fetchone()
    assert relations is not None
    heap, toast, wal_end = relations
    paths = [data_dir / name for name in (heap, toast) if name]
    segments = sorted(p for p in (data_dir / "pg_wal").iterdir() if WAL_NAME.fullmatch(p.name))
    paths += [p for p in segments if wal_start <= p.name <= wal_end]
    # A relation grows in 1 GB segments: heap, heap.1, …
    return [seg for path in paths for seg in [path, *sorted(path.parent.glob(path.name + ".*"))]]


def current_wal_file(settings: Settings) -> str:
    with psycopg.connect(settings.storage.database_url or "", autocommit=True) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
    assert row is not None
    return str(row[0])


def readable_or_skip(paths: list[Path]) -> None:
    unreadable = [str(p) for p in paths if not os.access(p, os.R_OK)]
    if not unreadable:
        return
    reason = f"PostgreSQL data files not readable by this user: {unreadable[:3]}"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


# --- (a) nothing in clear on disk ---------------------------------------------------------


def test_resource_content_never_reaches_the_database_files(
    server: ServerProcess, settings: Settings, http: httpx.Client, marker: str
) -> None:
    pg = settings.storage.database_url is not None
    wal_start = current_wal_file(settings) if pg else ""
    sent = seed(http, marker)
    # The marker really is in the data: the API gives it back, decrypted.
    for type_, id_ in sent:
        assert marker in http.get(f"{type_}/{id_}").text
        assert marker in http.get(f"{type_}/{id_}/_history").text
    # The INS is still searchable through its blind index (only with its system).
    found = http.get("Patient", params={"identifier": f"{INS}|ins-{marker}"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [sent_ids(sent, "Patient")]
    database = pg_files(settings, wal_start) if pg else sqlite_files(settings)
    if pg:
        readable_or_skip(database)
    data_dir = sqlite_files(settings)  # the key ring, and for SQLite the database and its WAL
    assert any(p.name == "data-keys.json" for p in data_dir)
    paths = sorted(set(database + data_dir))
    assert files_containing(marker.encode(), paths) == []
    # Control: the same files do hold the plaintext id column, so the search can succeed.
    some_id = next(iter(sent))[1]
    assert files_containing(some_id.encode(), database), "the search looked at the wrong files"
    if not pg:  # once stopped, SQLite has checkpointed its WAL into the main file
        server.stop()
        assert files_containing(marker.encode(), sqlite_files(settings)) == []
        assert files_containing(some_id.encode(), sqlite_files(settings))


# --- (b) the key ring is private ----------------------------------------------------------


def test_key_ring_file_is_private(server: ServerProcess, settings: Settings) -> None:
    key_file = settings.storage.data_dir / "keys" / "data-keys.json"
    assert key_file.is_file()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    ring = json.loads(key_file.read_text())
    assert ring["active"] in ring["keys"]


# --- (c) tampering is detected -----------------------------------------------------------


def assert_integrity_failure(answer: httpx.Response, *secrets_: str) -> None:
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "integrity" in outcome["issue"][0]["diagnostics"]
    for text in (*secrets_, "Traceback", "InvalidTag", 'File "'):
        assert text not in answer.text


def test_tampered_or_moved_ciphertext_is_refused(
    server: ServerProcess, settings: Settings, http: httpx.Client, marker: str
) -> None:
    victims = {name: f"{name}-{secrets.token_hex(6)}" for name in ("flipped", "moved", "intact")}
    for name, id_ in victims.items():
        assert put(http, patient(id_, f"{marker}{name}")).status_code == 201
    table = Table(settings)
    if not table.pg:
        server.stop()  # SQLite: alter the file only while no server holds it
    key_id, blob = table.sealed("Patient", victims["flipped"], 1)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    table.store("Patient", victims["flipped"], 1, key_id, bytes(flipped))
    table.store("Patient", victims["moved"], 1, *table.sealed("Patient", victims["intact"], 1))
    if not table.pg:
        server.start()
    with httpx.Client(base_url=server.base + "/", headers=server.headers, timeout=10) as fresh:
        for path in (f"Patient/{victims['flipped']}", f"Patient/{victims['flipped']}/_history/1"):
            assert_integrity_failure(fresh.get(path), marker)
        # The moved body is a valid ciphertext, but bound to another resource's type/id/version.
        assert_integrity_failure(fresh.get(f"Patient/{victims['moved']}"), marker)
        intact = fresh.get(f"Patient/{victims['intact']}")
        assert intact.status_code == 200 and intact.json()["contact"][0]["name"]["family"].endswith(
            "intact"
        )


# --- (d) key rotation beside a live, busy server -----------------------------------------


class BackgroundWriter(threading.Thread):
    """PUTs new patients and new versions, as fast as it can, until stopped."""

    def __init__(self, base: str, marker: str, headers: dict[str, str]) -> None:
        super().__init__(name="rotation-writer")
        self.base, self.marker, self.headers = base, marker, headers
        self.sent: dict[Key, list[dict[str, Any]]] = {}
        self.failures: list[str] = []
        self.acknowledged = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base + "/", headers=self.headers, timeout=30) as http:
            step = 0
            while not self.halt.is_set():
                self.write(http, f"rot-{step // 2}", step)
                step += 1

    def write(self, http: httpx.Client, id_: str, step: int) -> None:
        resource = patient(id_, self.marker, given=f"g{step}")
        try:
            answer = put(http, resource)
        except httpx.HTTPError as exc:
            self.failures.append(f"{id_}: {exc!r}")
            return
        if answer.status_code not in (200, 201):
            self.failures.append(f"{id_}: {answer.status_code} {answer.text[:200]}")
            return
        self.sent.setdefault(("Patient", id_), []).append(resource)
        self.acknowledged += 1


def rotate(settings: Settings) -> dict[str, Any]:
    storage = settings.storage
    cmd = [sys.executable, "-m", "rempart.cli", "keys", "rotate"]
    cmd += ["--data-dir", str(storage.data_dir)]
    if storage.database_url:
        cmd += ["--database", storage.database_url]
    env = {**os.environ, "REMPART_PG_SCHEMA": storage.postgres_schema}
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def rotate_under_load(
    server: ServerProcess, settings: Settings, marker: str
) -> tuple[dict[str, Any], BackgroundWriter]:
    writer = BackgroundWriter(server.base, marker, server.headers)
    writer.start()
    try:
        time.sleep(0.3)
        before = writer.acknowledged
        report = rotate(settings)
        during = writer.acknowledged - before
    finally:
        writer.halt.set()
        writer.join(30)
    assert not writer.is_alive()
    assert writer.failures == [], writer.failures[:5]
    assert during > 0, "no write was acknowledged while the rotation ran"
    return report, writer


def test_rotation_reencrypts_everything_without_downtime(
    server: ServerProcess, settings: Settings, http: httpx.Client, marker: str
) -> None:
    sent = seed(http, marker)
    for index in range(40):
        resource = patient(f"old-{index}", marker)
        assert put(http, resource).status_code == 201
        sent[("Patient", resource["id"])] = [resource]
    table = Table(settings)
    assert set(table.key_ids()) == {"k1"}
    for expected_key in ("k2", "k3"):
        report, writer = rotate_under_load(server, settings, marker)
        assert report["active_key"] == expected_key and report["rows_reencrypted"] >= 43
        for key, versions in writer.sent.items():
            sent.setdefault(key, []).extend(versions)
        keys = table.key_ids()
        assert set(keys) == {expected_key}, f"rows per key after rotating to {expected_key}: {keys}"
        assert_reads_back(http, sent)
    ring = json.loads((settings.storage.data_dir / "keys" / "data-keys.json").read_text())
    assert ring["active"] == "k3" and set(ring["keys"]) == {"k1", "k2", "k3"}
