"""The baseline: a bare ASGI callable that answers ``GET /fhir/{type}/{id}``.

No framework, no validation, no decryption: it reads the latest version's stored
body from the same table Rempart wrote and returns those bytes as they are (the
AES-GCM ciphertext, about the size of the plaintext). It is the floor that uvicorn
plus one database round trip cost on this machine. Served by uvicorn with the
settings Rempart uses; see bench/README.md.

Configuration from the environment (uvicorn workers import this module):
``BENCH_DATABASE`` (a SQLite file path or a ``postgresql://`` URL),
``BENCH_PG_SCHEMA`` and ``BENCH_POOL_SIZE`` (PostgreSQL only).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LATEST_SQLITE = (
    "SELECT body FROM resource_version WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1"
)
LATEST_PG = (
    "SELECT body FROM resource_version WHERE type = %s AND id = %s ORDER BY version DESC LIMIT 1"
)
HEADERS = [(b"content-type", b"application/fhir+json")]


class SqliteReader:
    """A plain read-only sqlite3 connection, queried on the event loop as Rempart does."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    async def open(self) -> None:
        return None

    async def latest(self, type_: str, id_: str) -> bytes | None:
        row = self._conn.execute(LATEST_SQLITE, (type_, id_)).fetchone()
        return bytes(row[0]) if row else None

    async def close(self) -> None:
        self._conn.close()


class PostgresReader:
    """A psycopg async pool sized and configured like Rempart's."""

    def __init__(self, url: str, schema: str, size: int) -> None:
        kwargs = {"options": f"-c search_path={schema}", "autocommit": True}
        self._pool = AsyncConnectionPool(url, min_size=1, max_size=size, kwargs=kwargs, open=False)

    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=10)

    async def latest(self, type_: str, id_: str) -> bytes | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(LATEST_PG, (type_, id_))
            row = await cursor.fetchone()
        return bytes(row[0]) if row else None

    async def close(self) -> None:
        await self._pool.close()


def _reader() -> SqliteReader | PostgresReader:
    database = os.environ["BENCH_DATABASE"]
    if database.startswith("postgresql://"):
        schema = os.environ.get("BENCH_PG_SCHEMA", "rempart")
        return PostgresReader(database, schema, int(os.environ.get("BENCH_POOL_SIZE", "16")))
    return SqliteReader(database)


READER = _reader()


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    parts = scope["path"].split("/")
    body = None
    if scope["method"] == "GET" and len(parts) == 4 and parts[1] == "fhir":
        body = await READER.latest(parts[2], parts[3])
    if body is None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await READER.open()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await READER.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
