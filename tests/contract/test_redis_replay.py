"""The Redis replay cache's contract, against a real Redis server.

Under ``CI=true`` an unreachable server fails the run; elsewhere these tests skip.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from rempart.errors import Category, RempartError
from rempart.storage.redis_replay import PREFIX, RedisReplayCache, open_redis_replay

RACERS = 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def key(redis_url: str) -> Iterator[str]:
    """A key no other test uses, deleted afterwards."""
    name = f"test-{secrets.token_hex(8)}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        client.delete(PREFIX + name)


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[RedisReplayCache]:
    opened = await open_redis_replay(redis_url)
    yield opened
    await opened.close()


@pytest.mark.anyio
async def test_a_key_is_accepted_once(cache: RedisReplayCache, key: str) -> None:
    assert await cache.use_once(key, time.time() + 60) is True
    assert await cache.use_once(key, time.time() + 60) is False


@pytest.mark.anyio
async def test_the_key_expires_with_the_assertion(
    cache: RedisReplayCache, key: str, redis_url: str
) -> None:
    expires = time.time() + 60
    assert await cache.use_once(key, expires) is True
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        expire_at_ms = await client.pexpiretime(PREFIX + key)
    assert abs(expire_at_ms - int(expires * 1000)) <= 1


@pytest.mark.anyio
async def test_an_already_expired_key_is_not_remembered(cache: RedisReplayCache, key: str) -> None:
    assert await cache.use_once(key, time.time() - 1) is True
    assert await cache.use_once(key, time.time() + 60) is True
    assert await cache.use_once(key, time.time() + 60) is False


@pytest.mark.anyio
async def test_racing_instances_accept_exactly_one(redis_url: str, key: str) -> None:
    caches = [await open_redis_replay(redis_url) for _ in range(2)]
    try:
        expires = time.time() + 60
        racers = [caches[n % 2].use_once(key, expires) for n in range(RACERS)]
        assert (await asyncio.gather(*racers)).count(True) == 1
    finally:
        for opened in caches:
            await opened.close()


@pytest.mark.anyio
async def test_unreachable_redis_is_unavailable() -> None:
    with pytest.raises(RempartError) as caught:
        await open_redis_replay("redis://127.0.0.1:1/0")
    assert caught.value.category is Category.UNAVAILABLE
