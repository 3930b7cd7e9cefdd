"""Gateway step 2: audit capture, around everything but the host check.

Every HTTP request but ``/healthz`` is recorded, whatever answered it: the rate limit
(429), authentication (401), the scope check (403), the FHIR interaction, the
authorization server or the admin API. The answer is held until its AuditEvents are
committed; if they cannot be, the caller gets a 503 instead (never an unaudited
answer). Inner layers leave what only they know in ``scope["state"]``: the caller
(``principal``), the FHIR route and body (``fhir``), and for the other endpoints the
claimed client, the user name or the failure detail (``audit``, see :func:`note`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rempart.errors import Category, RempartError
from rempart.security.audit.capture import (
    Exchange,
    answered_patients,
    audit_events,
    fhir_resource,
    fhir_subtype,
    purpose_of,
    requested_patients,
)
from rempart.security.audit.trail import AuditTrail, unavailable
from rempart.web.middleware import request_id_of, send_error

UNAUDITED = frozenset({"/healthz"})
AUTH_SUBTYPES = {
    "/auth/token": "token",
    "/auth/authorize": "authorize",
    "/auth/login": "login",
    "/auth/consent": "consent",
    "/auth/introspect": "introspect",
    "/auth/revoke": "revoke",
    "/auth/jwks": "jwks",
    "/fhir/.well-known/smart-configuration": "discovery",
}
ADMIN_SUBTYPES = {"GET": "admin-read", "POST": "admin-create", "DELETE": "admin-delete"}


def note(scope: Scope, **facts: Any) -> None:
    """Leave facts for the audit of this request (``client``, ``user``, ``token_id``,
    ``detail``, ``principal``); only what may be recorded: never a secret."""
    scope.setdefault("state", {}).setdefault("audit", {}).update(facts)


class AuditCapture:
    def __init__(self, app: ASGIApp, trail_of: Callable[[], AuditTrail | None]) -> None:
        self.app = app
        self.trail_of = trail_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = request_id_of(scope).decode()
        trail = self.trail_of()
        try:
            if trail is None:  # not opened (the lifespan did not run): serve nothing
                raise unavailable()
            await trail.admit()
        except RempartError:
            await send_error(scope, send, unavailable())
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, receive, hold)
        finally:  # an inner failure is recorded and answered too (then re-raised)
            await self._answer(trail, scope, state, held, send)

    async def _answer(
        self,
        trail: AuditTrail,
        scope: Scope,
        state: dict[str, Any],
        held: list[Message],
        send: Send,
    ) -> None:
        try:
            await trail.record(audit_events(_exchange(scope, state, held)))
        except RempartError:
            await send_error(scope, send, unavailable())
            return
        if not any(m["type"] == "http.response.start" for m in held):
            await send_error(scope, send, server_error())
            return
        for message in held:
            await send(message)


def server_error() -> RempartError:
    return RempartError(Category.FAULT, "Internal error")


def _exchange(scope: Scope, state: dict[str, Any], held: list[Message]) -> Exchange:
    status = next((m["status"] for m in held if m["type"] == "http.response.start"), 500)
    facts: dict[str, Any] = state.get("audit", {})
    client = scope.get("client")
    headers = dict(scope.get("headers", ()))
    exchange = Exchange(
        request_id=state["request_id"],
        recorded=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        method=scope["method"],
        path=scope["path"][:512],
        address=str(client[0]) if client else "unknown",
        status=status,
        subtype="http",
        principal=state.get("principal") or facts.get("principal"),
        client=facts.get("client"),
        user=facts.get("user"),
        token_id=facts.get("token_id"),
        detail=facts.get("detail"),
        purpose=purpose_of(_text(headers.get(b"x-purpose-of-use"))),
    )
    fhir = state.get("fhir")
    if fhir is not None:
        _fhir_facts(exchange, fhir, status, held)
    else:
        path = exchange.path
        admin = ADMIN_SUBTYPES.get(exchange.method, "admin") if path.startswith("/admin") else None
        exchange.subtype = admin or AUTH_SUBTYPES.get(path, "http")
    return exchange


def _fhir_facts(exchange: Exchange, fhir: dict[str, Any], status: int, held: list[Message]) -> None:
    names, query, body = fhir["names"], fhir["query"], fhir["body"]
    exchange.subtype = fhir_subtype(exchange.method, fhir["shape"], body)
    exchange.resource = fhir_resource(names)
    exchange.query = query
    patients = requested_patients(names, query, body)
    if status < 400 and names.get("type") != "AuditEvent":  # the audit's own records
        answer = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        patients = answered_patients(patients, answer)
        if exchange.resource is None and exchange.subtype == "create":
            exchange.resource = _created(held)
            if exchange.resource and exchange.resource.startswith("Patient/"):
                patients = [exchange.resource.split("/")[1], *patients]
    exchange.patients = list(dict.fromkeys(patients))


def _created(held: list[Message]) -> str | None:
    """``Type/id/_history/v`` from the Location of a create's answer."""
    for message in held:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", ()):
                if name == b"location":
                    location = bytes(value).decode("latin-1")
                    parts = location.split("/fhir/", 1)
                    return parts[1] if len(parts) == 2 else None
    return None


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None
