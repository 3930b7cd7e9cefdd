"""The budgets behind the rate limits: a sliding window counter per key, kept in this
process's memory (``memory.py``) or, by the ``limits`` library, in Redis shared by
every process.

A sliding window counter (two fixed windows, the previous one weighted by how much of
it still overlaps) costs two counters per key whatever the traffic, unlike a log of
hits, and has no burst at window edges as a fixed window has. A refused hit spends
nothing: a client that keeps hammering is held at its budget, not pushed further back.

When the store is unreachable (Redis down), requests that check credentials (the
``/auth`` paths: token endpoint, login) are refused with 503, since a limit that
vanishes under attack would make password and assertion guessing free; everything
else is served without limits and a warning is logged: the FHIR API still requires a
valid token, and a hospital should not lose its records because a cache fell over.
A server configured with Redis does not start while Redis is unreachable.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from rempart.config import RateLimitSettings
from rempart.errors import Category, RempartError
from rempart.security.principal import Principal
from rempart.security.ratelimit.memory import MemoryWindows
from rempart.security.ratelimit.policy import cost, payer

log = logging.getLogger("rempart.security")
TIMEOUT = 1.0
"""Seconds to wait for Redis: past that a request is served (or refused) without it."""
WARN_EVERY = 60.0
"""Seconds between two warnings that the store is unavailable (not one per request)."""


@dataclass(frozen=True)
class Decision:
    """The answer of one budget to one hit."""

    allowed: bool
    limit: int
    """Cost units the budget holds per window (one minute)."""
    remaining: int | None = None
    """Units left; known for refusals only (one more store round trip)."""
    reset: int | None = None
    """Seconds until a unit frees up; known for refusals only."""


def too_many(decision: Decision) -> RempartError:
    """The 429 for a refused hit, with ``Retry-After`` and ``RateLimit-*`` headers."""
    reset = str(decision.reset or 1)
    headers = {
        "retry-after": reset,
        "ratelimit-limit": str(decision.limit),
        "ratelimit-remaining": str(decision.remaining or 0),
        "ratelimit-reset": reset,
    }
    return RempartError(Category.TOO_MANY, "Too many requests", headers=headers)


def unavailable() -> RempartError:
    return RempartError(Category.UNAVAILABLE, "The rate limit store is unavailable")


class RateLimiter:
    """Budgets per client address (``ip``, ``auth``) and per payer (``client``, ``user``).

    A limiter built from disabled settings allows everything and touches no store.
    """

    def __init__(self, settings: RateLimitSettings, redis_url: str | None = None) -> None:
        self._pool: redis.ConnectionPool | None = None
        self._enabled = settings.enabled
        self._storage: Storage
        self._memory: MemoryWindows | None = None
        if redis_url is None or not settings.enabled:
            self._storage = MemoryStorage()
            self._memory = MemoryWindows()
        else:
            self._pool = redis.ConnectionPool.from_url(
                redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            )
            # Our own pool, so that close() can release it (limits has no close).
            options: dict[str, Any] = {"connection_pool": self._pool}
            self._storage = RedisStorage(
                f"async+{redis_url}",
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=settings.key_prefix,
                **options,
            )
        self._window = SlidingWindowCounterRateLimiter(self._storage)
        self._items: dict[str, RateLimitItem] = {
            "ip": RateLimitItemPerMinute(settings.ip_per_minute, namespace="ip"),
            "auth": RateLimitItemPerMinute(settings.auth_per_minute, namespace="auth"),
            "client": RateLimitItemPerMinute(settings.client_per_minute, namespace="client"),
            "user": RateLimitItemPerMinute(settings.user_per_minute, namespace="user"),
        }
        self._warned = -WARN_EVERY
        # One answer per budget for the common case, not a new object per request.
        self._allowed = {kind: Decision(True, item.amount) for kind, item in self._items.items()}

    async def open(self) -> None:
        """Checks that a shared store answers: refuse to start rather than start unlimited."""
        if self._pool is not None and not await self._storage.check():
            await self.close()
            raise unavailable()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def ip(self, address: str, cost: int = 1, *, fail_closed: bool = False) -> Decision:
        """One request from ``address``, before anything is known of the caller."""
        return await self._hit("ip", address, cost, fail_closed)

    async def auth(self, address: str) -> Decision:
        """One credential check (token request, login) from ``address``; fails closed."""
        return await self._hit("auth", address, 1, True)

    async def principal(self, kind: str, name: str, cost: int) -> Decision:
        """``cost`` units from the budget of a ``client`` or ``user`` named ``name``."""
        return await self._hit(kind, name, cost, False)

    async def charge(self, principal: Principal, method: str, shape: str) -> None:
        """Charges one FHIR interaction to whoever pays for it; 429 when over budget."""
        kind, name = payer(principal)
        decision = await self.principal(kind, name, cost(method, shape))
        if not decision.allowed:
            raise too_many(decision)

    async def _hit(self, kind: str, name: str, units: int, fail_closed: bool) -> Decision:
        item = self._items[kind]
        if not self._enabled:
            return Decision(True, item.amount)
        if self._memory is not None:
            allowed, remaining, reset = self._memory.hit(f"{kind}/{name}", item.amount, units)
            if allowed:
                return self._allowed[kind]
            return Decision(False, item.amount, remaining, reset)
        try:
            if await self._window.hit(item, name, cost=units):
                return Decision(True, item.amount)
            stats = await self._window.get_window_stats(item, name)
        except StorageError as exc:
            if fail_closed:
                raise unavailable() from exc
            self._warn(exc)
            return Decision(True, item.amount)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(False, item.amount, stats.remaining, reset)

    def _warn(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("rate limits not applied, store unavailable: %r", exc.storage_error)
