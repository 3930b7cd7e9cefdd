"""The authorization server's records in PostgreSQL, in ``auth_*`` tables of the schema.

Connections are in autocommit: every statement of :mod:`rempart.storage.auth_sql` is
its own transaction, and the ones that must happen once are single statements whose
row locks settle races between processes.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from rempart.errors import Category, RempartError
from rempart.storage import auth_sql
from rempart.storage.auth_ports import AuthStore
from rempart.storage.auth_sql import Change, Params, Row, SqlAuthStore
from rempart.storage.postgres.store import SCHEMA_NAME

# The resource store takes the same lock: both create the schema, and two workers
# starting together would race on CREATE SCHEMA / CREATE TABLE IF NOT EXISTS.
DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('rempart-schema', 0))"


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def _unavailable() -> RempartError:
    return RempartError(Category.UNAVAILABLE, "The database is unavailable")


class PostgresRunner:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def rows(self, sql: str, params: Params) -> list[Row]:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(_pg(sql), params)
                return await cursor.fetchall()
        except psycopg.OperationalError as exc:
            raise _unavailable() from exc

    async def change(self, sql: str, params: Params) -> Change:
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(_pg(sql), params)
                rows = await cursor.fetchall() if cursor.description else []
                return Change(cursor.rowcount, rows)
        except psycopg.OperationalError as exc:
            raise _unavailable() from exc

    async def close(self) -> None:
        await self._pool.close()


async def _create(pool: AsyncConnectionPool, name: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(DDL_LOCK)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        await conn.execute(auth_sql.schema("postgres", f"{name}."))


async def open_postgres_auth(url: str, schema: str, pool_size: int = 4) -> AuthStore:
    """Open the auth tables in ``schema`` (created if need be) at ``url``."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise RempartError(Category.FAULT, "Invalid PostgreSQL schema name")
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        kwargs={"options": f"-c search_path={schema}", "autocommit": True},
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=10)
        await _create(pool, schema)
    except (psycopg.Error, TimeoutError) as exc:
        await pool.close()
        raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from exc
    return SqlAuthStore(PostgresRunner(pool))
