"""PostgreSQL: each process's copy of the blocks follows the table through
LISTEN/NOTIFY, and lookups read the table as soon as the copy cannot be trusted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from rempart.storage.postgres.auth import PostgresAuthStore, open_postgres_auth


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.anyio
async def test_a_block_reaches_every_process(pg_url: str, pg_schema: str) -> None:
    first = await open_postgres_auth(pg_url, pg_schema)
    second = await open_postgres_auth(pg_url, pg_schema)
    try:
        assert isinstance(second, PostgresAuthStore) and second._mirror.ready
        until = time.time() + 600
        await first.block("jti:revoked", until)
        assert await first.blocked(["jti:revoked"], time.time())  # at once where it happened
        started = time.monotonic()
        assert await eventually(lambda: second.blocked(["jti:revoked"], time.time()))
        assert time.monotonic() - started < 1.0
        assert not await second.blocked(["jti:other"], time.time())
        assert not await second.blocked(["jti:revoked"], until + 1)  # expiry still applies
        third = await open_postgres_auth(pg_url, pg_schema)  # started later: loads the table
        try:
            assert await third.blocked(["jti:revoked"], time.time())
        finally:
            await third.close()
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_lookups_read_the_table_once_notifications_are_lost(
    pg_url: str, pg_schema: str
) -> None:
    store = await open_postgres_auth(pg_url, pg_schema)
    other = await open_postgres_auth(pg_url, pg_schema)
    try:
        assert isinstance(store, PostgresAuthStore)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"rempart_block_{pg_schema}",),
            )

        async def distrusted() -> bool:
            return not store._mirror.ready

        assert await eventually(distrusted)
        await other.block("user:gone", time.time() + 600)
        assert await store.blocked(["user:gone"], time.time())  # read from the table
    finally:
        await store.close()
        await other.close()
