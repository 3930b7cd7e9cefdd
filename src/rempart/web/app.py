"""``create_app(settings)``: the whole application, wired explicitly in one place.

The request path (design.md) is assembled here in a fixed order:
security headers and request id (added by the FHIR endpoint itself for ``/fhir``,
by ``SecurityHeaders`` for the rest) → (authentication, authorization, rate limits and
audit will be inserted here, not registered as optional plugins) → the FHIR
endpoint for ``/fhir/…``, Starlette for everything else (health, later the console).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rempart.config import Settings
from rempart.fhir.validation import FhirkitValidator
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.rest.metadata import Metadata
from rempart.rest.paging import CursorSigner
from rempart.rest.routes import INTERACTIONS, Handler
from rempart.storage.crypto import secret_file
from rempart.storage.open import open_keyring, open_store
from rempart.web.errors import http_exception, server_error
from rempart.web.fhir_app import PREFIX, FhirApp, Routes
from rempart.web.middleware import HostGuard, SecurityHeaders


def create_app(settings: Settings) -> ASGIApp:
    state: dict[str, Context] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await open_store(settings, open_keyring(settings))
        cursors = CursorSigner(_cursor_key(settings))
        state["ctx"] = Context(store, FhirkitValidator(), settings.limits, cursors)
        try:
            yield
        finally:
            await store.close()

    def bind(handler: Handler) -> Callable[[FhirRequest], Awaitable[FhirResponse]]:
        async def call(request: FhirRequest) -> FhirResponse:
            return await handler(state["ctx"], request)

        return call

    routes = Routes()
    routes.add("GET", "metadata", Metadata())
    for method, shape, handler in INTERACTIONS:
        routes.add(method, shape, bind(handler))
    fhir = FhirApp(routes, settings.limits.max_body_bytes, settings.server.base_url)
    other = Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"])],
        exception_handlers={HTTPException: http_exception, Exception: server_error},
        lifespan=lifespan,
    )
    return HostGuard(Dispatch(fhir, SecurityHeaders(other)), _allowed_hosts(settings))


class Dispatch:
    """``/fhir/…`` to the FHIR endpoint; everything else (and lifespan) to Starlette."""

    def __init__(self, fhir: ASGIApp, other: ASGIApp) -> None:
        self.fhir, self.other = fhir, other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith(PREFIX) or path == PREFIX[:-1]):
            await self.fhir(scope, receive, send)
        else:
            await self.other(scope, receive, send)


def _allowed_hosts(settings: Settings) -> list[str]:
    hosts = list(settings.server.allowed_hosts)
    if settings.server.base_url:
        hosts.append(urlsplit(settings.server.base_url).hostname or "")
    return hosts


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _cursor_key(settings: Settings) -> bytes:
    """The key signing paging cursors: shared by all processes on one data directory."""
    return secret_file(settings.storage.data_dir / "keys" / "cursor.key", "paging cursor")
