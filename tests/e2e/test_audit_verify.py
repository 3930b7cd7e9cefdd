"""``rempart audit verify`` as a real process on a real database (SQLite file and
PostgreSQL schema): it passes on an untouched store, then the database is tampered
with directly, each way in turn, and it must fail naming the first bad record."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from audit_kit import run_verify

from rempart.config import Settings, StorageSettings
from rempart.storage.open_audit import open_audit_signer, open_audit_store

Tamper = list[tuple[str, tuple[Any, ...]]]


def event(n: int) -> dict[str, object]:
    return {
        "resourceType": "AuditEvent",
        "type": {"code": "rest"},
        "subtype": [{"code": "read"}],
        "outcome": "0",
        "entity": [{"what": {"reference": f"Patient/p{n}"}}],
    }


async def fill(settings: Settings) -> None:
    """Twelve records: a checkpoint after 6, another after 10, two unsigned after."""
    store = await open_audit_store(settings, open_audit_signer(settings))
    try:
        await store.append_many([event(n) for n in range(1, 7)])
        await store.checkpoint()
        await store.append_many([event(n) for n in range(7, 11)])
        await store.checkpoint()
        await store.append_many([event(11), event(12)])
    finally:
        await store.close()


class Database:
    """Direct access to the audit tables, as an intruder with the database would have."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, statements: Tamper) -> None:
        if self.settings.storage.database_url is None:
            with sqlite3.connect(self.settings.storage.data_dir / "audit.db") as conn:
                for sql, params in statements:
                    conn.execute(sql, params)
            conn.close()
            return
        schema = f"{self.settings.storage.postgres_schema}_audit"
        url = self.settings.storage.database_url
        with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
            for sql, params in statements:
                conn.execute(sql.replace("?", "%s"), params)

    def body(self, seq: int) -> bytes:
        if self.settings.storage.database_url is None:
            with sqlite3.connect(self.settings.storage.data_dir / "audit.db") as conn:
                row = conn.execute("SELECT body FROM audit_event WHERE seq = ?", (seq,)).fetchone()
            conn.close()
            return bytes(row[0])
        schema = f"{self.settings.storage.postgres_schema}_audit"
        with psycopg.connect(
            self.settings.storage.database_url, options=f"-c search_path={schema}"
        ) as conn:
            found = conn.execute("SELECT body FROM audit_event WHERE seq = %s", (seq,)).fetchone()
            assert found is not None
            return bytes(found[0])


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    asyncio.run(fill(settings))
    yield Database(settings)


def one_byte_changed(body: bytes) -> bytes:
    at = body.index(b"p5")
    return body[:at] + b"q" + body[at + 1 :]


def test_an_untouched_store_verifies(settings: Settings, database: Database) -> None:
    assert run_verify(settings) == (0, {"ok": True, "records": 12, "checkpoints": 2})


def test_a_modified_byte_is_named(settings: Settings, database: Database) -> None:
    database.run(
        [("UPDATE audit_event SET body = ? WHERE seq = 5", (one_byte_changed(database.body(5)),))]
    )
    assert run_verify(settings) == (
        1,
        {"ok": False, "first_bad": 5, "reason": "record 5 was modified"},
    )


def test_a_deleted_row_is_named(settings: Settings, database: Database) -> None:
    database.run([("DELETE FROM audit_event WHERE seq = 7", ())])
    assert run_verify(settings) == (
        1,
        {"ok": False, "first_bad": 7, "reason": "record 7 was deleted"},
    )


def test_an_inserted_row_is_named(settings: Settings, database: Database) -> None:
    body = json.dumps(event(99)).encode()
    digest = hashlib.sha256(bytes(32) + body).digest()
    database.run(
        [("INSERT INTO audit_event (seq, body, prev_hash, hash) VALUES (0, ?, ?, ?)",
          (body, bytes(32), digest))]
    )  # fmt: skip
    assert run_verify(settings) == (
        1,
        {"ok": False, "first_bad": 0, "reason": "record 0 is out of sequence (inserted)"},
    )


def test_a_row_appended_without_the_chain_is_named(settings: Settings, database: Database) -> None:
    body = json.dumps(event(13)).encode()
    digest = hashlib.sha256(bytes(32) + body).digest()
    database.run(
        [("INSERT INTO audit_event (seq, body, prev_hash, hash) VALUES (13, ?, ?, ?)",
          (body, bytes(32), digest))]
    )  # fmt: skip
    assert run_verify(settings) == (
        1,
        {
            "ok": False,
            "first_bad": 13,
            "reason": "record 13 does not follow record 12 (inserted, replaced or reordered)",
        },
    )


def test_swapped_bodies_are_named(settings: Settings, database: Database) -> None:
    three, nine = database.body(3), database.body(9)
    database.run(
        [
            ("UPDATE audit_event SET body = ? WHERE seq = 3", (nine,)),
            ("UPDATE audit_event SET body = ? WHERE seq = 9", (three,)),
        ]
    )
    assert run_verify(settings) == (
        1,
        {"ok": False, "first_bad": 3, "reason": "record 3 was modified"},
    )


def test_a_tail_truncated_past_the_last_checkpoint_is_named(
    settings: Settings, database: Database
) -> None:
    database.run([("DELETE FROM audit_event WHERE seq > 8", ())])
    assert run_verify(settings) == (
        1,
        {
            "ok": False,
            "first_bad": 9,
            "reason": "records 9 to 10 were removed (the last checkpoint signed 10 records)",
        },
    )


def test_a_modified_checkpoint_is_refused(settings: Settings, database: Database) -> None:
    database.run([("UPDATE audit_checkpoint SET count = 12 WHERE count = 10", ())])
    assert run_verify(settings) == (
        1,
        {"ok": False, "first_bad": None, "reason": "the checkpoint of 12 records is not signed"},
    )


def test_a_missing_store_is_an_error_not_a_pass(tmp_path: Path) -> None:
    """A removed ``audit.db`` must not verify as an empty chain."""
    settings = Settings(storage=StorageSettings(data_dir=tmp_path / "data"))
    open_audit_signer(settings)  # the keys are there, the store is not
    cmd = [sys.executable, "-m", "rempart.cli", "audit", "verify"]
    cmd += ["--data-dir", str(settings.storage.data_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("rempart: No audit store at ")
    assert not (settings.storage.data_dir / "audit.db").exists()


WRITER = """
import asyncio, sys
from rempart.config import load_settings
from rempart.storage.open_audit import open_audit_signer, open_audit_store

async def main(name):
    settings = load_settings()
    store = await open_audit_store(settings, open_audit_signer(settings))
    for batch in range(40):
        await store.append_many([{"writer": name, "batch": batch, "n": n} for n in range(3)])
        if batch % 10 == 9:
            await store.checkpoint()
    await store.close()

asyncio.run(main(sys.argv[1]))
"""


def test_two_processes_writing_at_once_make_one_chain(settings: Settings) -> None:
    env = {
        **os.environ,
        "REMPART_DATA_DIR": str(settings.storage.data_dir),
        "REMPART_DATABASE_URL": settings.storage.database_url or "",
        "REMPART_PG_SCHEMA": settings.storage.postgres_schema,
    }
    open_audit_signer(settings)  # one key, made before the writers race to make it
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name], env=env) for name in ("a", "b")
    ]
    assert [writer.wait(60) for writer in writers] == [0, 0]
    assert run_verify(settings) == (0, {"ok": True, "records": 240, "checkpoints": 8})
