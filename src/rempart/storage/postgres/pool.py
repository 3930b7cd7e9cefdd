"""One way to open a pool on a schema of Rempart's: the name checked, the pool opened,
the schema and its tables created under one advisory lock (workers starting together
would race on ``CREATE … IF NOT EXISTS``), any failure a clear 503."""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from rempart.errors import Category, RempartError

SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('rempart-schema', 0))"


async def open_schema_pool(
    url: str, schema: str, pool_size: int, ddl: Sequence[str]
) -> AsyncConnectionPool:
    """A pool whose connections use ``schema``, after creating it and running ``ddl``."""
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
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(DDL_LOCK)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for statement in ddl:
                await conn.execute(statement)
    except (psycopg.Error, TimeoutError) as exc:
        await pool.close()
        raise RempartError(Category.UNAVAILABLE, "The database is unavailable") from exc
    return pool
