"""The audit store in a SQLite file of its own (``<data_dir>/audit.db``).

WAL with ``synchronous=FULL``: an append returns once its transaction is on disk.
Each append takes the write lock up front (``BEGIN IMMEDIATE``), then reads the head
and writes the records after it, so appends from other store instances and other
processes on the same file queue on ``busy_timeout`` and form one chain (an append
that finds the lock free runs on the event loop up to its COMMIT, which the writer
thread runs: :meth:`SqliteAuditStore._begin_here`). Append-only:
no statement changes a row, and the only deletes are :data:`PURGE`, run by
:meth:`SqliteAuditStore.purge` under the same lock, after signing a checkpoint that
anchors the remaining chain (docs/audit-export.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rempart.errors import Category, RempartError
from rempart.security.audit.checkpoints import CheckpointSigner
from rempart.security.audit.ports import AuditHit, AuditPage, AuditQuery, Purged, Removal
from rempart.security.audit.records import GENESIS, Checkpoint, StoredRecord, chain
from rempart.storage.audit_batch import GroupCommit
from rempart.storage.audit_group import EMPTY, Encoded, GroupRows, Head, PreparedGroup, encode
from rempart.storage.audit_index_sql import (
    EVENT,
    INSERT_INDEX,
    INSERT_REF,
    SQLITE_INDEX_SCHEMA,
    UNINDEXED,
    count_sql,
    index_rows,
    search_sql,
    stored_events,
)
from rempart.storage.audit_sql import (
    BATCH,
    CHECKPOINTS,
    EXPORT_MARK,
    FIRST,
    FIRST_SEQ,
    HASH_OF,
    HEAD,
    INSERT,
    INSERT_CHECKPOINT,
    INSERT_MARK,
    PAGE,
    PURGE,
    SIGNED,
)
from rempart.storage.audit_writer import WriterThread

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_event (
    seq INTEGER PRIMARY KEY, body BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    count INTEGER NOT NULL, head_hash BLOB NOT NULL, at TEXT NOT NULL, signature BLOB NOT NULL);
"""
T = TypeVar("T")
EXPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_export (
    name TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL);
"""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _create(path: Path) -> None:
    """Create the file owner-only before SQLite does, then the tables, idempotently.

    Under a file lock: switching to WAL needs the database to itself, and SQLite does
    not wait for that (no busy handler), so processes opening a new store at once would
    otherwise fail with "database is locked".
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = _connect(path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(
                f"BEGIN IMMEDIATE;{SCHEMA}{EXPORT_SCHEMA}{SQLITE_INDEX_SCHEMA}COMMIT;"
            )
        finally:
            conn.close()
    finally:
        os.close(lock)


def blob(value: object) -> bytes:
    """Bytes as stored; text put there by hand is taken as its UTF-8, so it is judged
    (and fails) rather than crashing the verification."""
    return value if isinstance(value, bytes) else str(value).encode()


def _head(conn: sqlite3.Connection) -> Head:
    row = conn.execute(HEAD).fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), blob(row[1]))


class WalFolder:
    """Folds the WAL into the database every second (``PRAGMA wal_checkpoint(PASSIVE)``:
    it never blocks writers or readers), on its own connection and thread."""

    def __init__(self, path: Path, seconds: float = 1.0) -> None:
        self._stop = threading.Event()
        self._seconds = seconds
        self._conn = _connect(path)
        self._thread = threading.Thread(target=self._run, name="rempart-audit-wal", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            with contextlib.suppress(sqlite3.Error):  # busy: the next second will do
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


class SqliteAuditStore:
    def __init__(self, path: Path, signer: CheckpointSigner | None) -> None:
        self._signer = signer
        self._writer = _connect(path)  # waits busy_timeout for the write lock
        self._eager = _connect(path)  # does not wait: see _begin_here
        self._eager.execute("PRAGMA busy_timeout = 0")
        for conn in (self._writer, self._eager):
            # A multi-row INSERT keeps a statement journal (to undo it alone if a row
            # fails); in a temporary file, that was an open, writes and a close a group.
            conn.execute("PRAGMA temp_store = MEMORY")
            # The WAL is folded into the database by a thread of its own (below), not
            # by the commit that crosses the threshold, which answers were waiting for.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._folder = WalFolder(path)
        self._reader = _connect(path)
        self._reader.execute("PRAGMA query_only = ON")
        self._lock = threading.Lock()  # one transaction at a time on the writer connection
        self._thread = WriterThread("rempart-audit-writer")  # runs every write transaction
        self._expected = EMPTY  # the head after this store's last append
        self._group: GroupCommit[Encoded] = GroupCommit(self._write)
        self._path = path  # searches open their own connection (see search)

    async def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        return await self._group.append(encode(events))

    async def _write(self, events: list[Encoded]) -> list[int]:
        # Chained here, on the loop; encoded when each append arrived (audit_group.py).
        group = PreparedGroup(events, self._expected)
        rows = self._begin_here(group)
        if rows is None:  # the write lock is taken: the writer thread waits for it
            rows = await self._transaction(functools.partial(_insert, group))
        else:
            await self._thread.run(self._commit_eager)
        self._expected = rows.head
        return rows.seqs

    def _begin_here(self, group: PreparedGroup) -> GroupRows | None:
        """The group's transaction up to its COMMIT, on the loop, if the write lock is
        free right now; None if it is not (nothing done).

        These statements only take a free lock and write to the page cache: C code
        that does not wait, done here in one go. On the writer thread, each of them
        released and took back the GIL, waiting each time for the loop to let it go:
        that made every commit slower, and the answers waiting for it. The COMMIT and
        its fsync, the slow part, stay on the writer thread (:meth:`_commit_eager`),
        which releases ``_lock`` afterwards.
        """
        # Only when the writer thread has nothing to do: a job queued before the
        # COMMIT's would wait for _lock, which only the COMMIT's job releases.
        if not self._thread.idle or not self._lock.acquire(blocking=False):
            return None
        conn = self._eager
        try:
            conn.execute("BEGIN IMMEDIATE")  # busy_timeout 0: SQLITE_BUSY at once if taken
        except sqlite3.OperationalError:
            self._lock.release()
            return None
        try:
            return _insert(group, conn)
        except BaseException as exc:  # nothing may leave the lock held
            self._end_eager(rollback=True)
            if isinstance(exc, sqlite3.Error):
                raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable") from exc
            raise

    def _commit_eager(self) -> None:
        try:
            self._eager.execute("COMMIT")
        except sqlite3.Error as exc:
            self._end_eager(rollback=True)
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable") from exc
        self._end_eager(rollback=False)

    def _end_eager(self, rollback: bool) -> None:
        try:
            if rollback and self._eager.in_transaction:
                self._eager.execute("ROLLBACK")
        finally:
            self._lock.release()

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        return self._thread.run(functools.partial(self._in_transaction, work))

    async def checkpoint(self) -> Checkpoint:
        signer = self._signer
        if signer is None:
            raise RempartError(Category.FAULT, "This audit store was opened without its key")

        def sign(conn: sqlite3.Connection) -> Checkpoint:
            checkpoint = signer.sign(*_head(conn))
            conn.execute(INSERT_CHECKPOINT, _checkpoint_row(checkpoint))
            return checkpoint

        return await self._transaction(sign)

    def _in_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable") from exc
            return result

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await asyncio.to_thread(self._read, CHECKPOINTS, ())
        return [Checkpoint(int(n), blob(head), str(at), blob(sig)) for n, head, at, sig in rows]

    async def records(self, after: int | None = None) -> AsyncIterator[StoredRecord]:
        last = FIRST if after is None else after
        while rows := await asyncio.to_thread(self._read, PAGE, (last, BATCH)):
            for seq, body, prev_hash, digest in rows:
                yield StoredRecord(int(seq), blob(body), blob(prev_hash), blob(digest))
            last = int(rows[-1][0])

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable") from exc

    async def close(self) -> None:
        await self._group.close()
        self._thread.close()
        self._folder.close()
        with self._lock:
            self._writer.close()
            self._eager.close()
            self._reader.close()

    async def export_mark(self, name: str) -> int | None:
        rows = await asyncio.to_thread(self._read, EXPORT_MARK, (name,))
        return None if rows[0][0] is None else int(rows[0][0])

    async def mark_exported(self, name: str, seq: int) -> None:
        def mark(conn: sqlite3.Connection) -> None:
            (current,) = conn.execute(EXPORT_MARK, (name,)).fetchone()
            if current is None or seq > int(current):
                conn.execute(INSERT_MARK, (name, seq, utc_now()))

        await self._transaction(mark)

    async def purge(self, through: int, removal: Removal) -> Purged:
        signer = self._signer
        if signer is None:
            raise RempartError(Category.FAULT, "This audit store was opened without its key")

        def remove(conn: sqlite3.Connection) -> Purged:
            (first,) = conn.execute(FIRST_SEQ).fetchone()
            found = conn.execute(HASH_OF, (through,)).fetchone()
            if first is None or found is None:
                raise RempartError(Category.INCORRECT, f"No record {through} to purge through")
            anchor = blob(found[0])
            if conn.execute(SIGNED, (through, anchor)).fetchone() is None:
                conn.execute(INSERT_CHECKPOINT, _checkpoint_row(signer.sign(through, anchor)))
            head = _head(conn)  # before the deletes: they may empty the table
            for sql in PURGE:
                conn.execute(sql, (through,))
            (record,) = chain([removal(int(first), through, anchor)], *head)
            conn.execute(INSERT, (record.seq, record.body, record.prev_hash, record.hash))
            conn.execute(INSERT_CHECKPOINT, _checkpoint_row(signer.sign(record.seq, record.hash)))
            return Purged(int(first), through, anchor, record.seq)

        return await self._transaction(remove)

    # --- search (GET /fhir/AuditEvent): the index written with the records ---

    async def search(self, query: AuditQuery) -> AuditPage:
        return await asyncio.to_thread(self._search, query)

    def _search(self, query: AuditQuery) -> AuditPage:
        """On a connection of its own, so that a long search never holds up appends
        (they share ``_lock``); one read transaction for the page and its total."""
        try:
            conn = _connect(self._path)
            try:
                conn.execute("PRAGMA query_only = ON")
                conn.execute("BEGIN")
                rows = conn.execute(*search_sql(query)).fetchall()
                total = None
                if query.with_total:
                    total = int(conn.execute(*count_sql(query)).fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable") from exc
        hits = [AuditHit(int(seq), int(at), blob(body)) for seq, at, body in rows]
        return AuditPage(hits[: query.count], len(hits) > query.count, total)

    async def event(self, seq: int) -> bytes | None:
        rows = await asyncio.to_thread(self._read, EVENT, (seq,))
        return blob(rows[0][0]) if rows else None

    def reindex(self) -> int:
        """Index the records a store written before the index holds, in batches, each
        under the write lock; how many. Run at open: appends index their own records."""
        done = 0

        def batch(conn: sqlite3.Connection) -> int:
            rows = conn.execute(UNINDEXED, (FIRST, BATCH)).fetchall()
            _write_index(conn, *stored_events(rows))
            return len(rows)

        while count := self._in_transaction(batch):
            done += count
        return done


def _checkpoint_row(checkpoint: Checkpoint) -> tuple[int, bytes, str, bytes]:
    return checkpoint.count, checkpoint.head_hash, checkpoint.at, checkpoint.signature


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def open_sqlite_audit(
    path: Path, signer: CheckpointSigner | None, create: bool = True
) -> SqliteAuditStore:
    """The audit store at ``path``, created unless ``create`` is false (verification
    must not answer "ok" for a store that was removed: it refuses a missing file)."""
    if not path.exists() and not create:
        raise RempartError(Category.INCORRECT, f"No audit store at {path}")
    try:
        _create(path)
    except sqlite3.Error as exc:
        raise RempartError(Category.UNAVAILABLE, "The audit store cannot be opened") from exc
    store = SqliteAuditStore(path, signer)
    if signer is not None:  # a writer; verification (no signer) changes nothing
        store.reindex()
    return store


def _insert(group: PreparedGroup, conn: sqlite3.Connection) -> GroupRows:
    """The group after the head read under the write lock (``BEGIN IMMEDIATE``)."""
    rows = group.rows(_head(conn))
    for sql, params in rows.statements():
        conn.execute(sql, params)
    return rows


def _write_index(
    conn: sqlite3.Connection, seqs: list[int], events: Sequence[Mapping[str, Any]]
) -> None:
    """The search index of the records just chained, in their transaction."""
    rows, refs = index_rows(seqs, events)
    conn.executemany(INSERT_INDEX, rows)
    conn.executemany(INSERT_REF, refs)
