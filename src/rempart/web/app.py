"""``create_app(settings)``: the whole application, wired explicitly in one place.

The request path (design.md) is assembled here in a fixed order. Steps not built
yet (authentication, authorization, rate limits, audit) will be inserted here, not
registered as optional plugins.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rempart.config import Settings
from rempart.fhir.validation import FhirkitValidator
from rempart.rest import create, delete, history, patch, read, update, vread
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.rest.metadata import Metadata
from rempart.rest.paging import CursorSigner
from rempart.storage.open import open_keyring, open_store
from rempart.web.adapter import Interaction, endpoint
from rempart.web.errors import http_exception, server_error
from rempart.web.middleware import SecurityHeaders

Handler = Callable[[Context, FhirRequest], Awaitable[FhirResponse]]


def create_app(settings: Settings) -> Starlette:
    state: dict[str, Context] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        keys = open_keyring(settings)
        store = await open_store(settings, keys)
        state["ctx"] = Context(
            store, FhirkitValidator(), settings.limits, CursorSigner(_cursor_key(settings))
        )
        try:
            yield
        finally:
            await store.close()

    def bind(handler: Handler) -> Interaction:
        async def call(request: FhirRequest) -> FhirResponse:
            return await handler(state["ctx"], request)

        return call

    ep = functools.partial(
        endpoint, max_body=settings.limits.max_body_bytes, base_url=settings.server.base_url
    )
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/fhir/metadata", ep(Metadata()), methods=["GET"]),
        Route("/fhir/_history", ep(bind(history.history)), methods=["GET"]),
        Route("/fhir/{type}/_history", ep(bind(history.history)), methods=["GET"]),
        Route("/fhir/{type}", ep(bind(create.create)), methods=["POST"]),
        Route("/fhir/{type}/{id}/_history/{vid}", ep(bind(vread.vread)), methods=["GET"]),
        Route("/fhir/{type}/{id}/_history", ep(bind(history.history)), methods=["GET"]),
        Route("/fhir/{type}/{id}", ep(bind(read.read)), methods=["GET"]),
        Route("/fhir/{type}/{id}", ep(bind(update.update)), methods=["PUT"]),
        Route("/fhir/{type}/{id}", ep(bind(delete.delete)), methods=["DELETE"]),
        Route("/fhir/{type}/{id}", ep(bind(patch.patch)), methods=["PATCH"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_exception, Exception: server_error},
        lifespan=lifespan,
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _cursor_key(settings: Settings) -> bytes:
    """The key signing paging cursors: shared by all processes on one data directory."""
    path: Path = settings.storage.data_dir / "keys" / "cursor.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError), open(path, "xb") as handle:
            path.chmod(0o600)
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()
