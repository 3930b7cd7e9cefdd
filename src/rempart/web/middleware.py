"""Gateway middleware, step 1 of the request path: security headers and request id.

Pure ASGI (no per-request objects) so that it costs almost nothing.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rempart.errors import Category, RempartError
from rempart.web.errors import error_parts

REQUEST_ID = re.compile(rb"[A-Za-z0-9\-_.]{8,64}")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]
# RFC 6797: only over TLS (a browser ignores it over http); two years, as HSTS
# preload lists ask.
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
TLS_SECURITY_HEADERS = [*SECURITY_HEADERS, HSTS]


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The security headers for an answer on this connection (HSTS under TLS)."""
    return TLS_SECURITY_HEADERS if scope.get("scheme") == "https" else SECURITY_HEADERS


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
        defaults = security_headers(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A page may set its own CSP or caching (the login form): it wins.
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [h for h in defaults if h[0] not in present]
                message["headers"] = [*headers, *extra, (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A random per-process prefix and a counter: unique across processes and restarts
# without a system call per request (request ids identify, they are not secrets).
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def request_id_of(scope: Scope) -> bytes:
    """The id already given to this request (by the audit capture), else the caller's
    X-Request-Id when it is well-formed, else a new one."""
    known = scope.get("state", {}).get("request_id")
    if known is not None:
        return str(known).encode()
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return bytes(value)
    return f"{_PREFIX}{next(_COUNTER):012x}".encode()


async def send_error(scope: Scope, send: Send, error: RempartError) -> None:
    """Answers ``error`` as an OperationOutcome, with the security headers and request id,
    from a middleware (before or around the application)."""
    status, headers, body = error_parts(error)
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw += [*security_headers(scope), (b"x-request-id", request_id_of(scope))]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class HostGuard:
    """Serves only requests whose Host names this server (DNS rebinding defence)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _host_name(scope) in self.allowed:
            await self.app(scope, receive, send)
            return
        await send_error(scope, send, RempartError(Category.INCORRECT, "Unknown host"))


def _host_name(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            host: str = bytes(value).decode("latin-1").lower()
            if host.startswith("["):  # [::1]:8080
                return host[1 : host.find("]")] if "]" in host else host
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""
