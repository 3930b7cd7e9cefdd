"""Assertion ``jti`` replay cache in Redis, shared by every server instance.

RFC 7523 §3 (item 7) lets the authorization server refuse a JWT whose ``jti`` it has
already seen; SMART App Launch 2.2 (backend services) requires it. Several hosts
behind one load balancer must share that memory: ``SET key 1 NX PXAT expires`` is
atomic in Redis, so exactly one of them accepts a given ``jti``. The key expires with
the assertion, after which it could no longer be replayed anyway.
"""

from __future__ import annotations

import redis.asyncio as redis
from redis.exceptions import RedisError

from rempart.errors import Category, RempartError

PREFIX = "rempart:once:"
TIMEOUT = 5.0
"""Seconds to wait for Redis before refusing: an unchecked ``jti`` is never accepted."""


def _unavailable() -> RempartError:
    return RempartError(Category.UNAVAILABLE, "The replay cache is unavailable")


class RedisReplayCache:
    """:class:`~rempart.storage.auth_ports.ReplayCache` over one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def use_once(self, key: str, expires: float) -> bool:
        # PXAT must be positive; a time already past makes Redis drop the key at once.
        at = max(1, int(expires * 1000))
        try:
            stored = await self._client.set(PREFIX + key, 1, nx=True, pxat=at)
        except RedisError as exc:
            raise _unavailable() from exc
        return bool(stored)

    async def close(self) -> None:
        await self._client.aclose()


async def open_redis_replay(url: str) -> RedisReplayCache:
    """Connect to Redis at ``url`` and check it answers, once."""
    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        raise _unavailable() from exc
    return RedisReplayCache(client)
