"""The authorization server's records in PostgreSQL, in ``auth_*`` tables of the schema.

Connections are in autocommit: every statement of :mod:`rempart.storage.auth_sql` is
its own transaction, and the ones that must happen once are single statements whose
row locks settle races between processes.

Every API request asks whether its token is blocked. A round trip for that cost about
half the throughput of a read by id (bench/gateway.py), so each process keeps a copy
of the live rows of ``auth_block`` (:class:`BlockMirror`): loaded at start, kept
current by ``LISTEN``/``NOTIFY`` (a block is inserted and announced in one statement,
so the announcement leaves exactly when it commits). The process that blocks sees it
at once; the others when PostgreSQL delivers the notification (milliseconds). The
listening connection proves it is alive every second; a copy whose connection has
not answered for two seconds is not used, and lookups read the table instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from rempart.errors import Category, RempartError
from rempart.storage import auth_sql
from rempart.storage.auth_ports import AuthStore
from rempart.storage.auth_sql import Change, Params, Row, SqlAuthStore
from rempart.storage.postgres.pool import open_schema_pool
from rempart.storage.sql import as_psycopg

log = logging.getLogger("rempart.storage")
BLOCK_AND_ANNOUNCE = (
    "WITH up AS (INSERT INTO auth_block (key, expires) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET expires = GREATEST(auth_block.expires, excluded.expires) "
    "RETURNING key, expires) SELECT pg_notify(%s, up.expires::text || ' ' || up.key) FROM up"
)
HEARTBEAT = 1.0
"""Seconds between two proofs that the listening connection is alive."""
TRUSTED_FOR = 2.0
"""Seconds the copy is used after the last proof; past that, the table is read."""


def _unavailable() -> RempartError:
    return RempartError(Category.UNAVAILABLE, "The database is unavailable")


class PostgresRunner:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def rows(self, sql: str, params: Params) -> list[Row]:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(as_psycopg(sql), params)
                return await cursor.fetchall()
        except psycopg.OperationalError as exc:
            raise _unavailable() from exc

    async def change(self, sql: str, params: Params) -> Change:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(as_psycopg(sql), params)
                rows = await cursor.fetchall() if cursor.description else []
                return Change(cursor.rowcount, rows)
        except psycopg.OperationalError as exc:
            raise _unavailable() from exc

    async def execute(self, sql: str, params: Params) -> None:
        """A statement already in PostgreSQL's placeholders."""
        try:
            async with self._pool.connection() as conn:
                await conn.execute(sql, params)
        except psycopg.OperationalError as exc:
            raise _unavailable() from exc

    async def close(self) -> None:
        await self._pool.close()


class BlockMirror:
    """This process's copy of the live rows of ``auth_block``."""

    def __init__(self, url: str, schema: str) -> None:
        self._url, self._schema = url, schema
        self.channel = f"rempart_block_{schema}"
        self._blocks: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._alive_until = 0.0

    @property
    def ready(self) -> bool:
        return time.monotonic() < self._alive_until

    async def start(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            options=f"-c search_path={self._schema}",
            application_name=self.channel,  # visible as such in pg_stat_activity
        )
        self._conn = conn
        await conn.execute(f"LISTEN {self.channel}")  # before loading: nothing falls between
        cursor = await conn.execute(
            "SELECT key, expires FROM auth_block WHERE expires > %s", (time.time(),)
        )
        for key, expires in await cursor.fetchall():
            self.note(key, float(expires))
        self._alive_until = time.monotonic() + TRUSTED_FOR
        self._task = asyncio.create_task(self._listen(conn))

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            while True:
                # Closed on the way out, so that it lets go of the connection's lock.
                async with contextlib.aclosing(conn.notifies(timeout=HEARTBEAT)) as notices:
                    async for notice in notices:
                        expires, _, key = notice.payload.partition(" ")
                        self.note(key, float(expires))
                async with asyncio.timeout(TRUSTED_FOR):
                    await conn.execute("SELECT 1")
                self._alive_until = time.monotonic() + TRUSTED_FOR
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("block notifications lost, reading the table instead: %r", exc)
        finally:
            self._alive_until = 0.0
            await conn.close()

    def note(self, key: str, expires: float) -> None:
        self._blocks[key] = max(expires, self._blocks.get(key, 0.0))

    def blocked(self, keys: Sequence[str], now: float) -> bool:
        return any(self._blocks.get(key, 0.0) > now for key in keys)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None and not self._conn.closed:
            await self._conn.close()


class PostgresAuthStore(SqlAuthStore):
    """The SQL store, with blocks announced and looked up in this process's copy."""

    def __init__(self, runner: PostgresRunner, mirror: BlockMirror) -> None:
        super().__init__(runner)
        self._pg_runner, self._mirror = runner, mirror

    async def block(self, key: str, until: float) -> None:
        await self._pg_runner.execute(BLOCK_AND_ANNOUNCE, (key, until, self._mirror.channel))
        self._mirror.note(key, until)  # this process knows at once, without waiting

    async def blocked(self, keys: Sequence[str], now: float) -> bool:
        if self._mirror.ready:
            return self._mirror.blocked(keys, now)
        return await super().blocked(keys, now)

    async def close(self) -> None:
        await self._mirror.stop()
        await super().close()


async def open_postgres_auth(url: str, schema: str, pool_size: int = 4) -> AuthStore:
    """Open the auth tables in ``schema`` (created if need be) at ``url``."""
    ddl = [auth_sql.schema("postgres", f"{schema}.")]
    pool = await open_schema_pool(url, schema, pool_size, ddl)
    mirror = BlockMirror(url, schema)
    try:
        await mirror.start()
    except psycopg.Error as exc:  # lookups then read the table
        log.warning("block notifications unavailable, reading the table instead: %r", exc)
    return PostgresAuthStore(PostgresRunner(pool), mirror)
