"""The PostgreSQL write path: versions, index rows and guards inside one transaction.

Round trips are what a write costs here, so a batch (a transaction Bundle) is written
with as few as possible: creates of fresh server-assigned ids are sent in one pipeline
(the unique ``(type, id, version)`` constraint refuses a duplicate, no lock or read is
needed), other writes lock and read their resource first, and the index rows of the
whole batch are sent with one ``COPY`` per table at the end (or before a guard reads).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg

from rempart.errors import Category, RempartError
from rempart.storage import index
from rempart.storage.crypto import KeyRing
from rempart.storage.index import BlindIndex
from rempart.storage.ports import StoredVersion, WriteRequest, WriteResult, from_micros
from rempart.storage.search_run import ids_matching
from rempart.storage.versioning import COLUMNS, Latest, Plan, open_row, plan_write, seal_body

Conn = psycopg.AsyncConnection[Any]
INSERT = (
    "INSERT INTO resource_version (type, id, version, last_updated, key_id, body, method) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq"
)
LATEST = (
    f"SELECT {COLUMNS} FROM resource_version WHERE type = %s AND id = %s "  # noqa: S608
    "ORDER BY version DESC LIMIT 1"
)
COPY = {
    table: f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    for table, columns in index.COLUMNS.items()
}


class Writes:
    """One batch of writes on one connection, inside the caller's transaction."""

    def __init__(self, conn: Conn, keys: KeyRing, blind: BlindIndex) -> None:
        self.conn, self.keys, self.blind = conn, keys, blind
        self.pending: index.Rows = defaultdict(list)

    async def apply(
        self, requests: list[WriteRequest], rows: list[index.Rows | None]
    ) -> list[WriteResult]:
        results: list[WriteResult] = []
        start = 0
        while start < len(requests):
            end = start
            while end < len(requests) and _fresh(requests[end]):
                end += 1
            if end > start:
                results += await self._creates(requests[start:end], rows[start:end])
            else:
                results.append(await self._one(requests[start], rows[start]))
                end = start + 1
            start = end
        await self.flush()
        return results

    async def flush(self) -> None:
        async with self.conn.cursor() as cursor:
            for table, values in self.pending.items():
                if values:
                    async with cursor.copy(COPY[table]) as copy:
                        for value in values:
                            await copy.write_row(value)
        self.pending.clear()

    async def _creates(
        self, requests: list[WriteRequest], rows: list[index.Rows | None]
    ) -> list[WriteResult]:
        plans = [_planned(plan_write(None, request)) for request in requests]
        try:
            async with self.conn.pipeline():
                cursors = [
                    await self.conn.execute(INSERT, self._insert_params(request, plan))
                    for request, plan in zip(requests, plans, strict=True)
                ]
                seqs = [_seq(await cursor.fetchone()) for cursor in cursors]
        except psycopg.errors.UniqueViolation:
            raise RempartError(
                Category.CONFLICT, "A resource with this id already exists"
            ) from None
        return [
            self._written(request, plan, seq, rows_, created=True)
            for request, plan, seq, rows_ in zip(requests, plans, seqs, rows, strict=True)
        ]

    async def _one(self, request: WriteRequest, rows: index.Rows | None) -> WriteResult:
        if request.guard is not None:
            await self.flush()  # the guard must see what this batch wrote before it
            await self._check_guard(request)
        key = f"{request.type}/{request.id}"
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        cursor = await self.conn.execute(LATEST, (request.type, request.id))
        row = await cursor.fetchone()
        latest = Latest(row[3], row[4], row[6] is None) if row else None
        plan = plan_write(latest, request)
        if plan is None:
            version = open_row(self.keys, row) if row else None
            return WriteResult(version, created=False, changed=False)
        if plan.version > 1:
            await self.conn.execute(
                "UPDATE resource_version SET superseded = %s "
                "WHERE type = %s AND id = %s AND version = %s",
                (plan.last_updated, request.type, request.id, plan.version - 1),
            )
        inserted = await self.conn.execute(INSERT, self._insert_params(request, plan))
        seq = _seq(await inserted.fetchone())
        created = latest is None or latest.deleted
        return self._written(request, plan, seq, rows, created=created)

    async def _check_guard(self, request: WriteRequest) -> None:
        assert request.guard is not None
        # Conditional creates of one type queue on this lock, so the second one sees the
        # first one's resource once it committed (READ COMMITTED reads per statement).
        key = f"guard/{'/'.join(request.guard.types)}"
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        sql, params = ids_matching(request.guard, self.blind, 1)
        cursor = await self.conn.execute(sql.replace("?", "%s"), params)
        if await cursor.fetchone():
            raise RempartError(Category.CONFLICT, "A matching resource was just created")

    def _insert_params(self, request: WriteRequest, plan: Plan) -> tuple[Any, ...]:
        key_id, blob = seal_body(self.keys, request.type, request.id, plan.version, plan.body)
        return (
            *(request.type, request.id, plan.version, plan.last_updated),
            *(key_id, blob, plan.method),
        )

    def _written(
        self,
        request: WriteRequest,
        plan: Plan,
        seq: int,
        rows: index.Rows | None,
        *,
        created: bool,
    ) -> WriteResult:
        if plan.body is not None and rows is not None:
            for table, values in rows.items():
                self.pending[table] += [(seq, *value) for value in values]
        moment = from_micros(plan.last_updated)
        stored = StoredVersion(
            request.type, request.id, plan.version, moment, plan.body, seq, plan.method
        )
        return WriteResult(stored, created=created, changed=True)


def _fresh(request: WriteRequest) -> bool:
    """A create of a server-assigned id, with no condition: nothing to read first."""
    return request.create_only and request.render is not None and request.guard is None


def _planned(plan: Plan | None) -> Plan:
    assert plan is not None  # a create always writes a version
    return plan


def _seq(row: tuple[Any, ...] | None) -> int:
    return int(row[0]) if row else 0
