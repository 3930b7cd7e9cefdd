"""The SQLite writer thread survives whatever a write does, and never loses an answer."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from rempart.errors import Category, RempartError
from rempart.storage.sqlite.writer import GroupCommitWriter


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    db = tmp_path / "w.db"
    sqlite3.connect(db).execute("CREATE TABLE t (v TEXT)").connection.commit()
    made = GroupCommitWriter(
        lambda: sqlite3.connect(db, isolation_level=None, check_same_thread=False),
        max_group=16,
        lock_path=tmp_path / "w.lock",
    )
    yield made, db
    made.close()


def insert(value: str) -> Any:
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (value,)).rowcount


def rows(db: Path) -> list[str]:
    return [r[0] for r in sqlite3.connect(db).execute("SELECT v FROM t ORDER BY v")]


def test_an_unexpected_exception_fails_only_its_write(writer: Any) -> None:
    made, db = writer

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('half')")
        raise ValueError("a bug")

    futures = [made.submit(insert("a")), made.submit(broken), made.submit(insert("b"))]
    assert futures[0].result(5) == 1 and futures[2].result(5) == 1
    with pytest.raises(RempartError) as caught:
        futures[1].result(5)
    assert caught.value.category is Category.FAULT
    assert made.submit(insert("c")).result(5) == 1
    assert rows(db) == ["a", "b", "c"]  # the broken write left nothing behind


def test_a_cancelled_write_is_skipped_and_the_writer_goes_on(writer: Any) -> None:
    made, db = writer
    started = threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        started.set()
        time.sleep(0.3)

    made.submit(slow)
    started.wait(5)
    given_up: Future[Any] = made.submit(insert("given-up"))
    kept = made.submit(insert("kept"))
    assert given_up.cancel()
    assert kept.result(5) == 1
    assert made.submit(insert("later")).result(5) == 1
    assert rows(db) == ["kept", "later"]
