"""Audit groups prepared before the hand-off (storage/audit_group.py) and the writer
thread that runs the transactions (storage/audit_writer.py)."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from rempart.security.audit.records import GENESIS, chain
from rempart.storage.audit_group import CHUNK, EMPTY, PreparedGroup, encode, multi_row
from rempart.storage.audit_index_sql import SQLITE_INDEX_SCHEMA, index_rows
from rempart.storage.audit_writer import WriterThread
from rempart.storage.sqlite.audit import SCHEMA, open_sqlite_audit

EVENTS = [
    {
        "recorded": f"2026-11-23T02:00:00.{n:06d}Z",
        "type": {"code": "rest"},
        "entity": [{"what": {"reference": f"Patient/{n}"}, "type": {"code": "1"}}],
    }
    for n in range(CHUNK + 5)  # more than one statement's worth
]


def inserted(group: PreparedGroup, head: tuple[int, bytes]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA + SQLITE_INDEX_SCHEMA)
    for sql, params in group.rows(head).statements():
        conn.execute(sql, params)
    return conn


@pytest.mark.parametrize("head", [EMPTY, (7, b"\x01" * 32)])
def test_rows_are_those_of_chain_and_index_rows_after_the_head_given(
    head: tuple[int, bytes],
) -> None:
    group = PreparedGroup(encode(EVENTS), expected=(3, GENESIS))  # another writer moved it
    conn = inserted(group, head)
    records = chain(EVENTS, *head)
    stored = conn.execute("SELECT seq, body, prev_hash, hash FROM audit_event ORDER BY seq")
    assert stored.fetchall() == [(r.seq, r.body, r.prev_hash, r.hash) for r in records]
    rows, refs = index_rows([r.seq for r in records], EVENTS)
    assert conn.execute("SELECT * FROM audit_index ORDER BY seq").fetchall() == rows
    assert sorted(conn.execute("SELECT * FROM audit_ref").fetchall()) == sorted(refs)
    assert group.rows(head).head == (records[-1].seq, records[-1].hash)
    assert group.rows(head).seqs == [r.seq for r in records]


def test_a_statement_repeats_one_rows_values() -> None:
    assert multi_row("INSERT INTO t (a, b) VALUES (?, ?)", 2) == (
        "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
    )


def test_the_writer_runs_jobs_in_order_on_one_thread_and_raises_their_errors() -> None:
    writer = WriterThread("test-writer")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        if n == 2:
            raise ValueError("two")
        return n

    async def scenario() -> list[int | BaseException]:
        jobs = [writer.run(functools.partial(job, n)) for n in range(4)]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    try:
        results = asyncio.run(scenario())
    finally:
        writer.close()
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError)
    assert seen == [(n, "test-writer") for n in range(4)]


def test_the_wal_is_folded_by_a_thread_not_by_commits(tmp_path: Path) -> None:
    """Commits never checkpoint (``wal_autocheckpoint = 0``, so an answer never waits for
    one); the store's own thread folds the WAL into the database every second."""
    path = tmp_path / "audit.db"

    async def scenario() -> tuple[int, int]:
        store = open_sqlite_audit(path, None)
        try:
            before = path.stat().st_size
            await store.append_many([{"n": n, "pad": "x" * 2000} for n in range(300)])
            deadline = time.monotonic() + 5
            while path.stat().st_size <= before and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return before, path.stat().st_size
        finally:
            await store.close()

    before, after = asyncio.run(scenario())
    assert after > before + 300 * 2000
