"""The FHIR endpoint as a hand-written ASGI application.

A FHIR path has at most four segments, so matching it by hand is a few list
operations; going through a general router, request objects and response classes
cost more than the database read itself (bench/results). Everything under
``/fhir`` lands here: content negotiation, the body size limit and the mapping of
errors to OperationOutcomes happen once, for every interaction.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from rempart.errors import Category, RempartError
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.rest.routes import shape_of
from rempart.security.principal import Principal
from rempart.web.errors import error_parts, unexpected_parts
from rempart.web.middleware import request_id_of, security_headers

Interaction = Callable[[FhirRequest], Awaitable[FhirResponse]]
Gate = Callable[
    [str, str, dict[str, str], dict[str, str], str, dict[str, Any]], Awaitable[Principal | None]
]
"""(method, shape, path names, headers, FHIR base, request state) → the caller, or a
401/403 error; the caller is also left in the state as soon as known, for the audit."""
PUBLIC_SHAPES = ("metadata",)
PREFIX = "/fhir/"
JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
SAFE_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
WITH_BODY = {"POST", "PUT", "PATCH"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
DIGITS = re.compile(r"[0-9]{1,15}")


class Routes:
    """The interactions by (method, path shape); filled by ``create_app``."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], Interaction] = {}
        self.types: dict[str, dict[tuple[str, str], Interaction]] = {}

    def add(self, method: str, shape: str, interaction: Interaction) -> None:
        self.table[(method, shape)] = interaction

    def only(self, type_: str, method: str, shape: str, interaction: Interaction) -> None:
        """An interaction on ``type_``; a type given such routes is served by them alone
        (the audit trail: ``web/audit_search.py``), anything else on it is a 405."""
        self.types.setdefault(type_, {})[(method, shape)] = interaction

    def find(self, method: str, shape: str, type_: str | None) -> Interaction:
        own = self.types.get(type_ or "")
        if own is not None:
            found = own.get((method, shape))
            if found is None:
                raise RempartError(Category.NOT_ALLOWED, "This interaction is not supported here")
            return found
        interaction = self.table.get((method, shape))
        if interaction is None:
            raise _no_route(shape, method, self)
        return interaction


class FhirApp:
    def __init__(
        self,
        routes: Routes,
        gate: Gate,
        max_body: int,
        base_url: str | None,
        seconds: float = 30.0,
    ) -> None:
        self._routes = routes
        self._gate = gate
        self._seconds = seconds
        self._max_body = max_body
        self._base_url = base_url.rstrip("/") if base_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id.decode()
        try:
            response = await self._handle(scope, receive, state)
            status, headers, body = response.status, response.headers, response.body
        except RempartError as error:
            state.setdefault("audit", {})["detail"] = error.message
            status, headers, body = error_parts(error)
        except Exception as exc:  # noqa: BLE001 - the last guard: never a stack trace out
            status, headers, body = unexpected_parts(exc)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw += security_headers(scope)
        raw.append((b"x-request-id", request_id))
        raw.append((b"content-length", str(len(body) if body else 0).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body or b""})

    async def _handle(self, scope: Scope, receive: Receive, state: dict[str, Any]) -> FhirResponse:
        method: str = scope["method"]
        shape, names = shape_of(scope["path"][len(PREFIX) :].split("/"))
        audit: dict[str, Any] = {"shape": shape, "names": names, "query": (), "body": b""}
        state["fhir"] = audit  # what the audit capture records of this request
        # ASGI servers give header names in lower case already.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        base = self._base(scope, headers)
        principal, malformed = None, None
        try:
            audit["query"] = query = _query(scope["query_string"])
        except RempartError as error:
            query, malformed = (), error
        if shape not in PUBLIC_SHAPES:
            principal = await self._gate(method, shape, names, headers, base, state)
        if malformed is not None:
            raise malformed
        interaction = self._routes.find(method, shape, names.get("type"))
        _negotiate(headers, query)
        body = await _body(receive, headers, self._max_body) if method in WITH_BODY else b""
        audit["body"] = body
        request = FhirRequest(
            method,
            base,
            names.get("type"),
            names.get("id"),
            names.get("version"),
            names.get("target"),
            query,
            headers,
            body,
            principal,
        )
        if method in WRITES and shape != "_search" and not shape.endswith("/_search"):
            return await interaction(request)  # never cut short: it could still commit
        try:
            async with asyncio.timeout(self._seconds):
                return await interaction(request)
        except TimeoutError:
            raise RempartError(
                Category.UNAVAILABLE, "The request took too long", headers={"retry-after": "5"}
            ) from None

    def _base(self, scope: Scope, headers: dict[str, str]) -> str:
        return fhir_base(scope, headers.get("host", ""), self._base_url)


def fhir_base(scope: Scope, host: str, base_url: str | None) -> str:
    """The FHIR base as the caller sees it: the configured one, else from the request."""
    if base_url:
        return base_url
    server = scope.get("server")
    address = (str(server[0]), int(server[1])) if server else None
    return _base_for(scope.get("scheme", "http"), host, address)


@functools.lru_cache(maxsize=256)
def _base_for(scheme: str, host: str, server: tuple[str, int] | None) -> str:
    """The FHIR base for links; a Host header that is not a plain host is not trusted."""
    if not SAFE_HOST.fullmatch(host):
        address = server or ("127.0.0.1", 80)
        host = f"{address[0]}:{address[1]}"
    return f"{scheme}://{host}/fhir"


def _query(raw: bytes) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    try:
        return tuple(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, max_num_fields=200))
    except ValueError:
        raise RempartError(Category.INCORRECT, "Too many or malformed query parameters") from None


def _no_route(shape: str, method: str, routes: Routes) -> RempartError:
    if any(known == shape for _, known in routes.table):
        return RempartError(Category.NOT_ALLOWED, "This interaction is not supported here")
    return RempartError(Category.NOT_FOUND, "Unknown path")


def _negotiate(headers: dict[str, str], query: tuple[tuple[str, str], ...]) -> None:
    for key, value in query:
        if key == "_format" and value.split(";")[0].strip().lower() not in JSON_FORMATS:
            raise RempartError(
                Category.NOT_ACCEPTABLE, "Only FHIR JSON is supported (_format=json)"
            )
    accept = headers.get("accept", "").lower()
    if "xml" in accept and "json" not in accept and "*/*" not in accept:
        raise RempartError(Category.NOT_ACCEPTABLE, "Only application/fhir+json is supported")
    if "xml" in headers.get("content-type", "").lower():
        raise RempartError(Category.UNSUPPORTED_MEDIA, "Only application/fhir+json is supported")


async def _body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and (not DIGITS.fullmatch(declared) or int(declared) > limit):
        raise _too_large(limit)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RempartError(Category.INCORRECT, "The client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _too_large(limit: int) -> RempartError:
    return RempartError(Category.TOO_LARGE, f"The request body is larger than {limit} bytes")
