"""``create_app(settings)``: the whole application, wired explicitly in one place.

The request path (design.md) is assembled here in a fixed order:
security headers and request id (added by the FHIR endpoint itself for ``/fhir``,
by ``SecurityHeaders`` for the rest) → authentication (bearer token → Principal) and
the scope check, in ``gate`` below, for every FHIR interaction but ``metadata`` →
the interaction. Rate limits sit at both ends of authentication: per client address
before it (``RateLimit``, right inside ``HostGuard``), per client or user after it
(in ``gate``). Audit capture (``AuditCapture``) wraps all of it, the host check
included: every answer, refusals too, waits for its AuditEvents to be committed.
Starlette serves everything else: health, SMART discovery, the authorization server
(``/auth``) and the admin API (``/admin``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
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
from rempart.security import access
from rempart.security.audit.ports import AuditSearch
from rempart.security.audit.trail import AuditTrail
from rempart.security.authentication import BearerAuthentication
from rempart.security.oauth.endpoints import Endpoints
from rempart.security.oauth.server import AuthorizationServer
from rempart.security.principal import Principal
from rempart.security.ratelimit import RateLimiter
from rempart.security.reached_store import ReachedStore
from rempart.storage.crypto import secret_file
from rempart.storage.open import open_auth_store, open_keyring, open_replay_cache, open_store
from rempart.storage.open_audit import open_audit_signer, open_audit_store
from rempart.web.admin import admin_routes
from rempart.web.audit import AuditCapture
from rempart.web.audit_search import TYPE as AUDIT_TYPE
from rempart.web.audit_search import AuditRoutes
from rempart.web.errors import http_exception, server_error
from rempart.web.fhir_app import PREFIX, FhirApp, Routes, fhir_base
from rempart.web.middleware import HostGuard, SecurityHeaders
from rempart.web.oauth import oauth_routes
from rempart.web.ratelimit import RateLimit


@dataclass
class State:
    """What the lifespan opens, once per process."""

    ctx: Context | None = None
    auth: AuthorizationServer | None = None
    authentication: BearerAuthentication | None = None
    trail: AuditTrail | None = None
    audit: AuditSearch | None = None
    """The audit store the trail appends to, searched by ``GET /fhir/AuditEvent``."""
    contexts: dict[Principal, Context] = field(default_factory=dict)
    """Per token: a token's context never changes, and building one per request showed
    in the gateway's profile."""

    def context(self) -> Context:
        assert self.ctx is not None, "used before the lifespan started"
        return self.ctx

    def context_for(self, principal: Principal | None) -> Context:
        """The interactions' context for one caller: the store as that caller may see
        it, and the per-interaction check for Bundle entries."""
        ctx = self.context()
        if principal is None:
            return ctx
        known = self.contexts.get(principal)
        if known is None:
            store = ReachedStore(ctx.store, principal)
            check = functools.partial(_check, principal)
            known = Context(store, ctx.validator, ctx.limits, ctx.cursors, check)
            if len(self.contexts) >= CONTEXTS_KEPT:
                self.contexts.clear()
            self.contexts[principal] = known
        return known

    def server(self) -> AuthorizationServer:
        assert self.auth is not None, "used before the lifespan started"
        return self.auth

    def bearer(self) -> BearerAuthentication:
        if self.authentication is None:
            self.authentication = BearerAuthentication(self.server().tokens)
        return self.authentication

    @contextlib.asynccontextmanager
    async def opened(
        self, settings: Settings, limiter: RateLimiter, audit: bool
    ) -> AsyncIterator[None]:
        """Opens the stores, the audit trail, the rate limiter and the authorization
        server for the process's life (the application's lifespan), and closes them."""
        store = await open_store(settings, open_keyring(settings))
        cursors = CursorSigner(_cursor_key(settings))
        self.ctx = Context(store, FhirkitValidator(), settings.limits, cursors)
        try:
            if audit:
                self.trail, self.audit = await _open_trail(settings)
            await limiter.open()
            self.auth = await _open_auth(settings)
            yield
        finally:
            if self.auth is not None:
                await self.auth.close()
            if self.trail is not None:
                await self.trail.close()
            await limiter.close()
            await store.close()


def create_app(settings: Settings, *, gateway: bool = True, audit: bool = True) -> ASGIApp:
    """The application. ``gateway=False`` serves ``/fhir`` with no token check, scope
    check, reach or rate limit, and ``audit=False`` records nothing: they exist only so
    that ``bench/gateway.py`` and ``bench/audit.py`` can measure what the gateway and the
    audit cost; nothing in the command line or the environment sets them."""
    state = State()
    # --- rate limits (security/ratelimit): built here, opened in the lifespan ---
    limiter = RateLimiter(settings.ratelimit, settings.auth.redis_url)

    def lifespan(app: Starlette) -> contextlib.AbstractAsyncContextManager[None]:
        return state.opened(settings, limiter, audit)

    def bind(handler: Handler) -> Callable[[FhirRequest], Awaitable[FhirResponse]]:
        async def call(request: FhirRequest) -> FhirResponse:
            return await handler(state.context_for(request.principal), request)

        return call

    async def gate(
        method: str,
        shape: str,
        names: dict[str, str],
        headers: dict[str, str],
        base: str,
        request_state: dict[str, Any],
    ) -> Principal:
        principal = await state.bearer().principal(headers.get("authorization"), base, base)
        request_state["principal"] = principal
        await limiter.charge(principal, method, shape)
        access.check(principal, method, shape, names)
        return principal

    def endpoints_of(request: Request) -> Endpoints:
        host = request.headers.get("host", "")
        base = fhir_base(request.scope, host, settings.server.base_url)
        return Endpoints(base.removesuffix("/fhir"))

    routes = Routes()
    routes.add("GET", "metadata", Metadata())
    for method, shape, handler in INTERACTIONS:
        routes.add(method, shape, bind(handler))
    _add_audit_routes(routes, AuditRoutes(settings, lambda: state.audit))
    checks = gate if gateway else _ungated
    limits, base_url = settings.limits, settings.server.base_url
    fhir = FhirApp(routes, checks, limits.max_body_bytes, base_url, limits.request_seconds)
    other = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *oauth_routes(state.server, endpoints_of),
            *admin_routes(state.server, endpoints_of),
        ],
        exception_handlers={HTTPException: http_exception, Exception: server_error},
        lifespan=lifespan,
    )
    dispatch = Dispatch(fhir, SecurityHeaders(other))
    limited = RateLimit(dispatch, limiter) if gateway else dispatch
    guarded = HostGuard(limited, _allowed_hosts(settings))
    return AuditCapture(guarded, lambda: state.trail) if audit else guarded


async def _ungated(
    method: str,
    shape: str,
    names: dict[str, str],
    headers: dict[str, str],
    base: str,
    request_state: dict[str, Any],
) -> Principal | None:
    return None


async def _open_trail(settings: Settings) -> tuple[AuditTrail, AuditSearch]:
    sink = await open_audit_store(settings, open_audit_signer(settings))
    trail = AuditTrail(sink, settings.audit.checkpoint_seconds)
    trail.start()
    return trail, sink


def _add_audit_routes(routes: Routes, audit: AuditRoutes) -> None:
    """AuditEvent is served by the audit store alone, never by the clinical one."""
    for method, shape, interaction in audit.routes():
        routes.only(AUDIT_TYPE, method, shape, interaction)


def _check(principal: Principal, method: str, shape: str, names: dict[str, str]) -> None:
    access.check(principal, method, shape, names)


async def _open_auth(settings: Settings) -> AuthorizationServer:
    store = await open_auth_store(settings)
    replay = await open_replay_cache(settings, store)
    keys_dir = settings.storage.data_dir / "keys"
    return AuthorizationServer.build(store, replay, keys_dir, settings.auth)


class Dispatch:
    """``/fhir/…`` to the FHIR endpoint; everything else (and lifespan) to Starlette."""

    def __init__(self, fhir: ASGIApp, other: ASGIApp) -> None:
        self.fhir, self.other = fhir, other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path == DISCOVERY:
            await self.other(scope, receive, send)
        elif scope["type"] == "http" and (path.startswith(PREFIX) or path == PREFIX[:-1]):
            await self.fhir(scope, receive, send)
        else:
            await self.other(scope, receive, send)


DISCOVERY = "/fhir/.well-known/smart-configuration"
CONTEXTS_KEPT = 4096


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
