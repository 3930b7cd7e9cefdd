"""The authorization server's records in a SQLite file of their own (``auth.db``).

Reads (``blocked()`` runs on every API request) stay on the event loop: a point read
on a WAL database takes microseconds and never waits for the writer. Writes go to a
thread, one at a time per process, each inside ``BEGIN IMMEDIATE … COMMIT``: the
write lock is taken up front, so writers of other processes sharing the file queue
on ``busy_timeout`` instead of failing on a lock upgrade.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from rempart.errors import Category, RempartError
from rempart.storage.auth_ports import AuthStore
from rempart.storage.auth_sql import Change, Params, Row, SqlAuthStore, schema


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _unavailable() -> RempartError:
    return RempartError(Category.UNAVAILABLE, "The database is unavailable")


def _create(path: Path) -> None:
    """Create the file owner-only before SQLite does, then the tables, idempotently."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    path.chmod(0o600)
    conn = _connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(f"BEGIN IMMEDIATE;{schema('sqlite')}COMMIT;")
    except sqlite3.Error as exc:
        raise RempartError(Category.UNAVAILABLE, "The database cannot be opened") from exc
    finally:
        conn.close()


class SqliteRunner:
    """Reads inline on a query-only connection; writes on one locked writer connection."""

    def __init__(self, path: Path) -> None:
        self._reader = _connect(path)
        self._reader.execute("PRAGMA query_only = ON")
        # Reads run to completion on the event loop without yielding, so one cursor
        # serves them all (a new cursor per read costs more than the read: 9.6 → 5.9 µs).
        self._cursor = self._reader.cursor()
        self._writer = _connect(path)
        self._lock = threading.Lock()

    async def rows(self, sql: str, params: Params) -> list[Row]:
        try:
            return self._cursor.execute(sql, params).fetchall()
        except sqlite3.Error:
            raise _unavailable() from None

    async def change(self, sql: str, params: Params) -> Change:
        return await asyncio.to_thread(self._change, sql, params)

    def data_version(self) -> int:
        """Changes whenever any other connection (another process, or this store's
        writer) commits to the file: SQLite's own, exact change signal."""
        try:
            return int(self._cursor.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            raise _unavailable() from None

    async def close(self) -> None:
        with self._lock:
            self._reader.close()
            self._writer.close()

    def _change(self, sql: str, params: Params) -> Change:
        with self._lock:
            try:
                return self._transaction(sql, params)
            except sqlite3.Error:
                raise _unavailable() from None

    def _transaction(self, sql: str, params: Params) -> Change:
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._writer.execute(sql, params)
            rows = cursor.fetchall()
            self._writer.execute("COMMIT")
        except BaseException:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            raise
        return Change(cursor.rowcount, rows)


def open_sqlite_auth(path: Path) -> AuthStore:
    """Open (creating if need be) the auth database at ``path``, e.g. ``data/auth.db``."""
    _create(path)
    try:
        runner = SqliteRunner(path)
    except sqlite3.Error as exc:
        raise RempartError(Category.UNAVAILABLE, "The database cannot be opened") from exc
    return SqliteAuthStore(runner)


class SqliteAuthStore(SqlAuthStore):
    """The SQL store, with the live blocks kept in memory. A block made here is known
    at once; one committed by another process is picked up when the file's
    ``PRAGMA data_version`` has changed, looked at most every ``RECHECK`` seconds: the
    pragma on every request was a fifth of the gateway's cost (bench/gateway.py)."""

    def __init__(self, runner: SqliteRunner) -> None:
        super().__init__(runner)
        self._sqlite = runner
        self._version: int | None = None
        self._next_check = 0.0
        self._blocks: dict[str, float] = {}

    async def block(self, key: str, until: float) -> None:
        await super().block(key, until)
        self._blocks[key] = max(until, self._blocks.get(key, 0.0))

    async def blocked(self, keys: Sequence[str], now: float) -> bool:
        moment = time.monotonic()
        if moment >= self._next_check:
            self._next_check = moment + RECHECK
            version = self._sqlite.data_version()
            if version != self._version:
                rows = await self._sqlite.rows(LIVE_BLOCKS, (now,))
                self._blocks = {str(key): float(expires) for key, expires in rows}
                self._version = version
        return any(self._blocks.get(key, 0.0) > now for key in keys)


RECHECK = 0.02
"""Seconds between two looks at whether another process changed the file."""
LIVE_BLOCKS = "SELECT key, expires FROM auth_block WHERE expires > ?"
