"""SQLite implementation of :class:`~rempart.storage.ports.ResourceStore`.

Reads run on the caller's thread with a read-only connection (WAL lets them run
beside the writer); point reads take microseconds, so they do not leave the event
loop. Writes go to the :class:`GroupCommitWriter` thread.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rempart.errors import Category, RempartError
from rempart.fhir.search.query import SearchQuery
from rempart.storage import index
from rempart.storage.crypto import KeyRing
from rempart.storage.index import BlindIndex
from rempart.storage.ports import (
    HistoryQuery,
    Reach,
    SearchRequest,
    SearchResult,
    StoredVersion,
    WriteRequest,
    WriteResult,
    from_micros,
)
from rempart.storage.reach_sql import latest_within, reach_where, version_within
from rempart.storage.search_run import (
    RawResult,
    Steps,
    dense_applies,
    ids_matching,
    run_search,
)
from rempart.storage.sqlite.writer import GroupCommitWriter
from rempart.storage.versioning import (
    COLUMNS,
    Latest,
    Plan,
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
""" + index.schema("sqlite")
INSERTS = index.insert_statements("?")
SCANNERS = 4
WRITE_CACHE_KIB = 256 * 1024
READ_CACHE_KIB = 64 * 1024
INLINE_BUDGET = 0.002
DENSE_BUDGET = 0.005
"""Seconds the dense reading of a search (search_run.dense_applies) may take."""
COLLECT_FIRST_BUDGET = 0.001
"""Seconds a search that could be read dense is first given to collect its matches."""
"""Seconds of SQLite work a search may take on the event loop before it moves to a thread."""
ANALYZE_EVERY = 5_000
"""Versions written between two refreshes of the planner's statistics."""
ANALYZE = ("PRAGMA analysis_limit = 1000", "ANALYZE")

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
    # The index b-trees outgrow SQLite's 2 MiB default cache quickly (a million
    # resources hold tens of millions of index rows); pages are allocated on use.
    conn.execute(f"PRAGMA cache_size = -{READ_CACHE_KIB if readonly else WRITE_CACHE_KIB}")
    return conn


class SqliteStore:
    def __init__(self, path: Path, keys: KeyRing, blind: BlindIndex, max_group: int = 256) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keys = keys
        self._blind = blind
        _init_schema(path)
        self._reader = connect(path, readonly=True)
        # One cursor for point reads: they run to completion on the event loop without
        # yielding, so reuse is safe and saves an allocation per request.
        self._point = self._reader.cursor()
        # Scans (history, search) may take long: they run in worker threads, each on a
        # connection of its own, so that the event loop keeps serving.
        self._scanners: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        for _ in range(SCANNERS):
            self._scanners.put(connect(path, readonly=True))
        self._writes = 0
        lock = path.with_name(path.name + ".write-lock")
        self._writer = GroupCommitWriter(lambda: connect(path), max_group, lock)

    async def read(self, type_: str, id_: str, reach: Reach | None = None) -> StoredVersion | None:
        if reach is None:
            return self._point_read(LATEST_SQL, (type_, id_))
        sql, within = latest_within(reach, self._blind)
        return self._point_read(sql, (type_, id_, *within))

    async def vread(
        self, type_: str, id_: str, version: int, reach: Reach | None = None
    ) -> StoredVersion | None:
        if reach is None:
            return self._point_read(VREAD_SQL, (type_, id_, version))
        sql, within = version_within(reach, self._blind)
        return self._point_read(sql, (type_, id_, version, *within))

    async def history(self, query: HistoryQuery) -> list[StoredVersion]:
        within = None if query.reach is None else reach_where(query.reach, "rv", self._blind, None)
        sql, params = history_sql(query, within)
        return await asyncio.to_thread(self._scan, sql, params)

    def _point_read(self, sql: str, params: tuple[Any, ...]) -> StoredVersion | None:
        try:
            row = self._point.execute(sql, params).fetchone()
        except sqlite3.Error:
            raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from None
        return open_row(self._keys, row) if row else None

    def _scan(self, sql: str, params: list[object]) -> list[StoredVersion]:
        with self._scanner() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [open_row(self._keys, row) for row in rows]

    @contextmanager
    def _scanner(self) -> Iterator[sqlite3.Connection]:
        conn = self._scanners.get()
        try:
            yield conn
        except sqlite3.Error:
            raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from None
        finally:
            self._scanners.put(conn)

    async def search(self, request: SearchRequest) -> SearchResult:
        raw = self._search_inline(request)
        if raw is None:  # over its budget: run it again where it may take its time
            raw = await asyncio.to_thread(self._search_threaded, request)
        return SearchResult(
            [open_row(self._keys, row) for row in raw.matches],
            [open_row(self._keys, row) for row in raw.included],
            raw.total,
            raw.more,
        )

    def _search_inline(self, request: SearchRequest) -> RawResult | None:
        """The search on the event loop if SQLite finishes it within the budget.

        Most searches take well under a millisecond in SQLite. Sent to a thread, each
        then waits for the GIL behind the event loop (up to the 5 ms switch interval):
        measured, that cost more than the query. A search over budget is interrupted
        and answered by :meth:`_search_threaded`, so a slow one never holds the loop.
        Where it applies, the dense reading is tried first, under a smaller budget.
        """
        if not dense_applies(request.query, self._blind):
            return self._within(INLINE_BUDGET, run_search(request, self._blind))
        # Collecting the matches is quickest while they are few; when it runs out of
        # its (short) budget they are many, and the dense reading stops at the page.
        raw = self._within(COLLECT_FIRST_BUDGET, run_search(request, self._blind))
        if raw is None:
            raw = self._within(DENSE_BUDGET, run_search(request, self._blind, dense=True))
        return raw

    def _within(self, budget: float, steps: Steps) -> RawResult | None:
        deadline = time.perf_counter() + budget
        self._reader.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
        try:
            return _drive(self._reader, steps)
        except sqlite3.OperationalError as error:
            if "interrupt" in str(error):
                return None
            raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from None
        except sqlite3.Error:
            raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from None
        finally:
            self._reader.set_progress_handler(None, 0)

    def _search_threaded(self, request: SearchRequest) -> RawResult:
        with self._scanner() as conn:
            return _drive(conn, run_search(request, self._blind))

    async def matching(
        self, query: SearchQuery, limit: int, reach: Reach | None = None
    ) -> list[tuple[str, str]]:
        sql, params = ids_matching(query, self._blind, limit, reach)
        with self._scanner() as conn:
            return [(row[0], row[1]) for row in conn.execute(sql, params).fetchall()]

    async def write(self, request: WriteRequest) -> WriteResult:
        self._count_writes(1)
        rows = index.rows_for(request, self._blind)
        future = self._writer.submit(lambda conn: self._write_many(conn, [(request, rows)])[0])
        result: WriteResult = await asyncio.wrap_future(future)
        return result

    async def write_all(self, requests: list[WriteRequest]) -> list[WriteResult]:
        self._count_writes(len(requests))
        pairs = [(request, index.rows_for(request, self._blind)) for request in requests]
        future = self._writer.submit(lambda conn: self._write_many(conn, pairs))
        results: list[WriteResult] = await asyncio.wrap_future(future)
        return results

    def _count_writes(self, count: int) -> None:
        """Refresh the statistics now and then: without them SQLite's planner may start
        a ``_has`` from the wrong index. ``analysis_limit`` keeps it to milliseconds."""
        self._writes += count
        if self._writes >= ANALYZE_EVERY:
            self._writes = 0
            self._writer.submit(_analyze)

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
        for _ in range(SCANNERS):
            self._scanners.get().close()

    def _write_many(
        self, conn: sqlite3.Connection, pairs: list[tuple[WriteRequest, index.Rows | None]]
    ) -> list[WriteResult]:
        """Apply writes in order; index rows go in one batch per table at the end."""
        pending: index.Rows = defaultdict(list)
        results = [self._write(conn, request, rows, pending) for request, rows in pairs]
        _flush(conn, pending)
        return results

    def _write(
        self,
        conn: sqlite3.Connection,
        request: WriteRequest,
        rows: index.Rows | None,
        pending: index.Rows,
    ) -> WriteResult:
        if request.guard is not None:
            _flush(conn, pending)  # the guard must see what this batch wrote before it
            sql, params = ids_matching(request.guard, self._blind, 1)
            if conn.execute(sql, params).fetchone():
                raise RempartError(Category.CONFLICT, "A matching resource was just created")
        # A create of a fresh id needs no look at the latest version: the unique
        # (type, id, version) constraint refuses a duplicate.
        fresh = request.create_only and request.render is not None
        row = None if fresh else conn.execute(LATEST_SQL, (request.type, request.id)).fetchone()
        latest = Latest(row[3], row[4], row[6] is None) if row else None
        plan = plan_write(latest, request)
        if plan is None:
            return WriteResult(
                open_row(self._keys, row) if row else None, created=False, changed=False
            )
        seq = self._insert(conn, request, plan)
        if plan.body is not None and rows is not None:
            for table, values in rows.items():
                pending[table] += [(seq, *value) for value in values]
        stored = StoredVersion(
            request.type,
            request.id,
            plan.version,
            from_micros(plan.last_updated),
            plan.body,
            seq,
            plan.method,
        )
        return WriteResult(stored, created=latest is None or latest.deleted, changed=True)

    def _insert(self, conn: sqlite3.Connection, request: WriteRequest, plan: Plan) -> int:
        sealed = seal_body(self._keys, request.type, request.id, plan.version, plan.body)
        if plan.version > 1:
            conn.execute(
                "UPDATE resource_version SET superseded = ? "
                "WHERE type = ? AND id = ? AND version = ?",
                (plan.last_updated, request.type, request.id, plan.version - 1),
            )
        try:
            cursor = conn.execute(
                "INSERT INTO resource_version "
                "(type, id, version, last_updated, key_id, body, method) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (request.type, request.id, plan.version, plan.last_updated, *sealed, plan.method),
            )
        except sqlite3.IntegrityError:
            raise RempartError(
                Category.CONFLICT, "A resource with this id already exists"
            ) from None
        return cursor.lastrowid or 0

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


def _drive(conn: sqlite3.Connection, steps: Steps) -> RawResult:
    """Run the search steps' statements on ``conn`` until they return the result."""
    try:
        sql, params = next(steps)
        while True:
            sql, params = steps.send(conn.execute(sql, params).fetchall())
    except StopIteration as done:
        result: RawResult = done.value
        return result


def _flush(conn: sqlite3.Connection, pending: index.Rows) -> None:
    for table, values in pending.items():
        conn.executemany(INSERTS[table], values)
    pending.clear()


def _analyze(conn: sqlite3.Connection) -> None:
    for statement in ANALYZE:
        conn.execute(statement)


def _init_schema(path: Path) -> None:
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        _analyze(conn)
    except sqlite3.Error as exc:
        raise RempartError(Category.UNAVAILABLE, "The database cannot be opened") from exc
    finally:
        conn.close()
    path.chmod(0o600)
