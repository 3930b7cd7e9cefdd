"""Gateway middleware, step 1 of the request path: security headers and request id.

Pure ASGI (no per-request objects) so that it costs almost nothing.
"""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = re.compile(rb"[A-Za-z0-9\-_.]{8,64}")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds the security headers and an ``X-Request-Id`` to every answer.

    The FHIR endpoint adds the same headers itself (``fhir_app.py``), without the
    cost of wrapping ``send``; this middleware covers everything else.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Nothing downstream sets these headers, so they are appended, not merged.
                headers = message.get("headers", [])
                message["headers"] = [*headers, *SECURITY_HEADERS, (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A random per-process prefix and a counter: unique across processes and restarts
# without a system call per request (request ids identify, they are not secrets).
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def request_id_of(scope: Scope) -> bytes:
    """The caller's X-Request-Id when it is well-formed, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return bytes(value)
    return f"{_PREFIX}{next(_COUNTER):012x}".encode()
