"""Gateway middleware, step 2 of the request path: the per-address rate limit, before
anything costly (design.md, "Security gateway").

Every HTTP request but ``/healthz`` spends one unit of its client address's budget
before authentication, so a flood of bad tokens or login guesses is cut by a 429
before each one costs a signature check or a password hash. Token requests and
logins also spend from a stricter per-address budget. The address is the TCP peer:
``X-Forwarded-For`` is never trusted (uvicorn runs with ``proxy_headers=False``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from rempart.errors import RempartError
from rempart.security.ratelimit import RateLimiter, too_many
from rempart.web.middleware import send_error

UNLIMITED = frozenset({"/healthz"})
CREDENTIALS = frozenset({"/auth/token", "/auth/login"})
"""Where a request checks a secret: the stricter ``auth`` budget applies."""
FAIL_CLOSED = "/auth/"
"""Paths refused (503) rather than served unlimited when the store is down."""


class RateLimit:
    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED:
            await self.app(scope, receive, send)
            return
        try:
            await self._spend(scope)
        except RempartError as error:
            await send_error(scope, send, error)
            return
        await self.app(scope, receive, send)

    async def _spend(self, scope: Scope) -> None:
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        path: str = scope["path"]
        decision = await self.limiter.ip(address, fail_closed=path.startswith(FAIL_CLOSED))
        if decision.allowed and path in CREDENTIALS and scope["method"] == "POST":
            decision = await self.limiter.auth(address)
        if not decision.allowed:
            raise too_many(decision)
