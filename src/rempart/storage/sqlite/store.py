"""SQLite implementation of :class:`~rempart.storage.ports.ResourceStore`.

Reads run on the caller's thread with a read-only connection (WAL lets them run
beside the writer); point reads take microseconds, so they do not leave the event
loop. Writes go to the :class:`GroupCommitWriter` thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from rempart.errors import Category, RempartError
from rempart.storage.crypto import KeyRing
from rempart.storage.ports import (
    HistoryQuery,
    StoredVersion,
    WriteRequest,
    WriteResult,
    from_micros,
)
from rempart.storage.sqlite.writer import GroupCommitWriter
from rempart.storage.versioning import (
    COLUMNS,
    Latest,
    history_sql,
    open_row,
    plan_write,
    seal_body,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS resource_version (
    seq          INTEGER PRIMARY KEY,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    superseded   INTEGER,
    key_id       TEXT,
    body         BLOB,
    method       TEXT    NOT NULL,
    UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS resource_version_type_seq ON resource_version (type, seq);
"""

LATEST_SQL = (
    f"SELECT {COLUMNS} FROM resource_version "  # noqa: S608
    "WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1"
)
VREAD_SQL = (
    f"SELECT {COLUMNS} FROM resource_version "  # noqa: S608
    "WHERE type = ? AND id = ? AND version = ?"
)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class SqliteStore:
    def __init__(self, path: Path, keys: KeyRing, max_group: int = 256) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keys = keys
        _init_schema(path)
        self._reader = connect(path, readonly=True)
        # One cursor for point reads: they run to completion on the event loop without
        # yielding, so reuse is safe and saves an allocation per request.
        self._point = self._reader.cursor()
        # Scans (history) may take long: they run in a worker thread on their own
        # connection, one at a time, so that the event loop keeps serving.
        self._scanner = connect(path, readonly=True)
        self._scan_lock = threading.Lock()
        lock = path.with_name(path.name + ".write-lock")
        self._writer = GroupCommitWriter(lambda: connect(path), max_group, lock)

    async def read(self, type_: str, id_: str) -> StoredVersion | None:
        return self._point_read(LATEST_SQL, (type_, id_))

    async def vread(self, type_: str, id_: str, version: int) -> StoredVersion | None:
        return self._point_read(VREAD_SQL, (type_, id_, version))

    async def history(self, query: HistoryQuery) -> list[StoredVersion]:
        sql, params = history_sql(query)
        return await asyncio.to_thread(self._scan, sql, params)

    def _point_read(self, sql: str, params: tuple[Any, ...]) -> StoredVersion | None:
        try:
            row = self._point.execute(sql, params).fetchone()
        except sqlite3.Error:
            raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from None
        return open_row(self._keys, row) if row else None

    def _scan(self, sql: str, params: list[object]) -> list[StoredVersion]:
        try:
            with self._scan_lock:
                rows = self._scanner.execute(sql, params).fetchall()
        except sqlite3.Error:
            raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from None
        return [open_row(self._keys, row) for row in rows]

    async def write(self, request: WriteRequest) -> WriteResult:
        future = self._writer.submit(lambda conn: self._write(conn, request))
        result: WriteResult = await asyncio.wrap_future(future)
        return result

    async def rewrap(self, batch: int = 500) -> int:
        total = 0
        while done := await asyncio.wrap_future(
            self._writer.submit(lambda c: self._rewrap(c, batch))
        ):
            total += done
        return total

    async def close(self) -> None:
        self._writer.close()
        self._point.close()
        self._reader.close()
        self._scanner.close()

    def _write(self, conn: sqlite3.Connection, request: WriteRequest) -> WriteResult:
        row = conn.execute(LATEST_SQL, (request.type, request.id)).fetchone()
        latest = Latest(row[3], row[4], row[6] is None) if row else None
        plan = plan_write(latest, request)
        if plan is None:
            return WriteResult(
                open_row(self._keys, row) if row else None, created=False, changed=False
            )
        sealed = seal_body(self._keys, request.type, request.id, plan.version, plan.body)
        conn.execute(
            "UPDATE resource_version SET superseded = ? WHERE type = ? AND id = ? AND version = ?",
            (plan.last_updated, request.type, request.id, plan.version - 1),
        )
        cursor = conn.execute(
            "INSERT INTO resource_version (type, id, version, last_updated, key_id, body, method) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (request.type, request.id, plan.version, plan.last_updated, *sealed, plan.method),
        )
        stored = StoredVersion(
            request.type,
            request.id,
            plan.version,
            from_micros(plan.last_updated),
            plan.body,
            cursor.lastrowid or 0,
            plan.method,
        )
        return WriteResult(stored, created=latest is None or latest.deleted, changed=True)

    def _rewrap(self, conn: sqlite3.Connection, batch: int) -> int:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM resource_version "  # noqa: S608
            "WHERE body IS NOT NULL AND key_id != ? LIMIT ?",
            (self._keys.active, batch),
        ).fetchall()
        for row in rows:
            version = open_row(self._keys, row)
            key_id, blob = seal_body(
                self._keys, version.type, version.id, version.version, version.body
            )
            conn.execute(
                "UPDATE resource_version SET key_id = ?, body = ? WHERE seq = ?",
                (key_id, blob, version.seq),
            )
        return len(rows)


def _init_schema(path: Path) -> None:
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
    except sqlite3.Error as exc:
        raise RempartError(Category.UNAVAILABLE, "The database cannot be opened") from exc
    finally:
        conn.close()
    path.chmod(0o600)
