"""The audit store in PostgreSQL, in a schema of its own (``<schema>_audit``).

Several processes append to ONE chain: each append transaction first takes a
transaction-scoped advisory lock on the chain, then reads the head, writes the
records after it and commits, which releases the lock. The head is read under the
lock, so no two transactions can chain to the same record. Append-only: no statement
changes a row, and the only deletes are :data:`PURGE`, run by
:meth:`PostgresAuditStore.purge` under the same lock, after signing a checkpoint that
anchors the remaining chain (docs/audit-export.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from rempart.errors import Category, RempartError
from rempart.security.audit.checkpoints import CheckpointSigner
from rempart.security.audit.ports import AuditHit, AuditPage, AuditQuery, Purged, Removal
from rempart.security.audit.records import GENESIS, Checkpoint, StoredRecord, chain
from rempart.storage import audit_sql as shared
from rempart.storage.audit_batch import GroupCommit
from rempart.storage.audit_group import EMPTY, Encoded, Head, PreparedGroup, encode
from rempart.storage.audit_index_sql import (
    EVENT,
    INSERT_INDEX,
    INSERT_REF,
    POSTGRES_INDEX_SCHEMA,
    UNINDEXED,
    count_sql,
    index_rows,
    search_sql,
    stored_events,
)
from rempart.storage.audit_sql import BATCH, FIRST, FIRST_SEQ
from rempart.storage.postgres.pool import open_schema_pool
from rempart.storage.sql import as_psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_event (
    seq BIGINT PRIMARY KEY, body BYTEA NOT NULL, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    count BIGINT NOT NULL, head_hash BYTEA NOT NULL, at TEXT NOT NULL, signature BYTEA NOT NULL);
"""
CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
HEAD = as_psycopg(shared.HEAD)
INSERT = as_psycopg(shared.INSERT)
INSERT_CHECKPOINT = as_psycopg(shared.INSERT_CHECKPOINT)
PAGE = as_psycopg(shared.PAGE)
CHECKPOINTS = as_psycopg(shared.CHECKPOINTS)
EXPORT_MARK = as_psycopg(shared.EXPORT_MARK)
INSERT_MARK = as_psycopg(shared.INSERT_MARK)
HASH_OF = as_psycopg(shared.HASH_OF)
SIGNED = as_psycopg(shared.SIGNED)
PURGE = tuple(map(as_psycopg, shared.PURGE))
UNNEST = (
    "INSERT INTO audit_event (seq, body, prev_hash, hash)"
    " SELECT * FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[], %b::bytea[])",
    "INSERT INTO audit_index (seq, recorded, type, subtype, action, outcome, request_id)"
    " SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::text[])",
    "INSERT INTO audit_ref (kind, value, recorded, seq)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bigint[])",
)
"""A group's rows, a table a statement, one array parameter per column, sent in binary
(``%b``: as text, psycopg escapes each element with a regular expression). A multi-row
``VALUES`` has as many parameters as values: psycopg parses such a statement again at
every call (it caches only those with at most 50 parameters)."""
EXPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_export (name TEXT NOT NULL, seq BIGINT NOT NULL, at TEXT NOT NULL);
"""


def _unavailable() -> RempartError:
    return RempartError(Category.UNAVAILABLE, "The audit store is unavailable")


async def _head(conn: psycopg.AsyncConnection[Any]) -> Head:
    row = await (await conn.execute(HEAD)).fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


class PostgresAuditStore:
    def __init__(self, pool: AsyncConnectionPool, schema: str, signer: CheckpointSigner | None):
        self._pool, self._signer = pool, signer
        self._chain_key = f"rempart-audit-chain:{schema}"
        self._expected = EMPTY  # the head after this store's last append
        self._group: GroupCommit[Encoded] = GroupCommit(self._write)

    async def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        return await self._group.append(encode(events))

    async def _write(self, events: list[Encoded]) -> list[int]:
        group = PreparedGroup(events, self._expected)  # encoded, hashed, indexed up front
        try:
            # Pipelined: two round trips a group (BEGIN, the lock and the head read;
            # then the inserts and the COMMIT, whose answer the pipeline's end waits
            # for) instead of one per statement.
            async with (
                self._pool.connection() as conn,
                _pipeline(conn),
                conn.transaction(),
            ):
                await conn.execute(CHAIN_LOCK, (self._chain_key,))
                rows = group.rows(await _head(conn))  # read under the lock
                for sql, table in zip(UNNEST, (rows.events, rows.index, rows.refs), strict=True):
                    if table:  # one array per column: one short statement a table
                        await conn.execute(
                            sql, [list(column) for column in zip(*table, strict=True)]
                        )
        except (psycopg.Error, TimeoutError) as exc:
            raise _unavailable() from exc
        self._expected = rows.head
        return rows.seqs

    async def checkpoint(self) -> Checkpoint:
        if self._signer is None:
            raise RempartError(Category.FAULT, "This audit store was opened without its key")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(CHAIN_LOCK, (self._chain_key,))
                checkpoint = self._signer.sign(*await _head(conn))
                row = (checkpoint.count, checkpoint.head_hash, checkpoint.at, checkpoint.signature)
                await conn.execute(INSERT_CHECKPOINT, row)
        except (psycopg.Error, TimeoutError) as exc:
            raise _unavailable() from exc
        return checkpoint

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self._read(CHECKPOINTS, ())
        return [Checkpoint(int(n), bytes(h), str(at), bytes(sig)) for n, h, at, sig in rows]

    async def records(self, after: int | None = None) -> AsyncIterator[StoredRecord]:
        last = FIRST if after is None else after
        while rows := await self._read(PAGE, (last, BATCH)):
            for seq, body, prev_hash, digest in rows:
                yield StoredRecord(int(seq), bytes(body), bytes(prev_hash), bytes(digest))
            last = int(rows[-1][0])

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            async with self._pool.connection() as conn:
                return await (await conn.execute(sql, params)).fetchall()
        except (psycopg.Error, TimeoutError) as exc:
            raise _unavailable() from exc

    async def close(self) -> None:
        await self._group.close()
        await self._pool.close()

    async def export_mark(self, name: str) -> int | None:
        rows = await self._read(EXPORT_MARK, (name,))
        return None if rows[0][0] is None else int(rows[0][0])

    async def mark_exported(self, name: str, seq: int) -> None:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                # Marks have their own lock: an export must not hold up appends.
                await conn.execute(CHAIN_LOCK, (f"{self._chain_key}:export-marks",))
                row = await (await conn.execute(EXPORT_MARK, (name,))).fetchone()
                if row is None or row[0] is None or seq > int(row[0]):
                    await conn.execute(INSERT_MARK, (name, seq, datetime.now(UTC).isoformat()))
        except (psycopg.Error, TimeoutError) as exc:
            raise _unavailable() from exc

    async def purge(self, through: int, removal: Removal) -> Purged:
        if self._signer is None:
            raise RempartError(Category.FAULT, "This audit store was opened without its key")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(CHAIN_LOCK, (self._chain_key,))
                return await _purge(conn, self._signer, through, removal)
        except (psycopg.Error, TimeoutError) as exc:
            raise _unavailable() from exc

    # --- search (GET /fhir/AuditEvent): the index written with the records ---

    async def search(self, query: AuditQuery) -> AuditPage:
        sql, params = search_sql(query)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                rows = await (await conn.execute(as_psycopg(sql), params)).fetchall()
                total = None
                if query.with_total:
                    sql, params = count_sql(query)
                    found = await (await conn.execute(as_psycopg(sql), params)).fetchone()
                    total = int(found[0]) if found else 0
        except (psycopg.Error, TimeoutError) as exc:
            raise _unavailable() from exc
        hits = [AuditHit(int(seq), int(at), bytes(body)) for seq, at, body in rows]
        return AuditPage(hits[: query.count], len(hits) > query.count, total)

    async def event(self, seq: int) -> bytes | None:
        rows = await self._read(as_psycopg(EVENT), (seq,))
        return bytes(rows[0][0]) if rows else None

    async def reindex(self) -> int:
        """Index the records a store written before the index holds, in batches, each
        under the chain lock; how many. Run at open: appends index their own records."""
        done = 0
        while True:
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    await conn.execute(CHAIN_LOCK, (self._chain_key,))
                    found = await conn.execute(as_psycopg(UNINDEXED), (FIRST, BATCH))
                    rows = await found.fetchall()
                    async with conn.cursor() as cursor:
                        await _write_index(cursor, *stored_events(rows))
            except (psycopg.Error, TimeoutError) as exc:
                raise _unavailable() from exc
            if not rows:
                return done
            done += len(rows)


async def _purge(
    conn: psycopg.AsyncConnection[Any], signer: CheckpointSigner, through: int, removal: Removal
) -> Purged:
    """The purge's steps, inside the caller's transaction and chain lock."""
    first = (await (await conn.execute(FIRST_SEQ)).fetchone() or (None,))[0]
    found = await (await conn.execute(HASH_OF, (through,))).fetchone()
    if first is None or found is None:
        raise RempartError(Category.INCORRECT, f"No record {through} to purge through")
    anchor = bytes(found[0])
    if await (await conn.execute(SIGNED, (through, anchor))).fetchone() is None:
        await conn.execute(INSERT_CHECKPOINT, _checkpoint_row(signer.sign(through, anchor)))
    head = await _head(conn)  # before the deletes: they may empty the table
    for sql in PURGE:
        await conn.execute(sql, (through,))
    (record,) = chain([removal(int(first), through, anchor)], *head)
    await conn.execute(INSERT, (record.seq, record.body, record.prev_hash, record.hash))
    await conn.execute(INSERT_CHECKPOINT, _checkpoint_row(signer.sign(record.seq, record.hash)))
    return Purged(int(first), through, anchor, record.seq)


def _checkpoint_row(checkpoint: Checkpoint) -> tuple[int, bytes, str, bytes]:
    return checkpoint.count, checkpoint.head_hash, checkpoint.at, checkpoint.signature


async def open_postgres_audit(
    url: str, schema: str, signer: CheckpointSigner | None, pool_size: int = 4
) -> PostgresAuditStore:
    """The audit tables in the schema ``<schema>_audit`` (created if need be) at ``url``."""
    name = f"{schema}_audit"
    pool = await open_schema_pool(
        url, name, pool_size, [SCHEMA, EXPORT_SCHEMA, POSTGRES_INDEX_SCHEMA]
    )
    store = PostgresAuditStore(pool, name, signer)
    if signer is not None:  # a writer; verification (no signer) changes nothing
        await store.reindex()
    return store


async def _write_index(
    cursor: psycopg.AsyncCursor[Any], seqs: list[int], events: Sequence[Mapping[str, Any]]
) -> None:
    """The search index of the records just chained, in their transaction."""
    rows, refs = index_rows(seqs, events)
    await cursor.executemany(as_psycopg(INSERT_INDEX), rows)
    if refs:
        await cursor.executemany(as_psycopg(INSERT_REF), refs)


def _pipeline(conn: psycopg.AsyncConnection[Any]) -> AbstractAsyncContextManager[object]:
    """Pipeline mode where libpq has it (14 and later), else statement by statement."""
    return conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
