"""The admin API: clients and user accounts, for tokens holding ``system/rempart.admin``.

``/admin/clients`` and ``/admin/users``: GET lists, POST registers (the same checks as
``rempart clients add`` and ``rempart users add``), GET one, DELETE disables (its
tokens stop working at once). Errors are OperationOutcomes, as everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rempart.errors import Category, RempartError
from rempart.security.authentication import BearerAuthentication, insufficient_scope
from rempart.security.oauth.endpoints import Endpoints
from rempart.security.oauth.server import AuthorizationServer
from rempart.security.registry import (
    ClientSpec,
    UserSpec,
    client_json,
    client_record,
    disable_client,
    disable_user,
    user_json,
    user_record,
)
from rempart.security.scopes import ADMIN_SCOPE
from rempart.web.audit import note
from rempart.web.errors import error_parts

MAX_BODY = 64 * 1024
NO_STORE = {"cache-control": "no-store"}
Handler = Callable[[Request, AuthorizationServer], Awaitable[Response]]


def admin_routes(
    server_of: Callable[[], AuthorizationServer], endpoints_of: Callable[[Request], Endpoints]
) -> list[Route]:
    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def call(request: Request) -> Response:
            server, ep = server_of(), endpoints_of(request)
            try:
                principal = await BearerAuthentication(server.tokens).principal(
                    request.headers.get("authorization"), ep.issuer, ep.fhir_base
                )
                note(request.scope, principal=principal)
                if ADMIN_SCOPE not in principal.scopes:
                    raise insufficient_scope(ADMIN_SCOPE)
                return await handler(request, server)
            except RempartError as error:
                note(request.scope, detail=error.message)
                status, headers, body = error_parts(error)
                return Response(body, status_code=status, headers=headers)

        return call

    return [
        Route("/admin/clients", guarded(list_clients), methods=["GET"]),
        Route("/admin/clients", guarded(add_client), methods=["POST"]),
        Route("/admin/clients/{name}", guarded(get_client), methods=["GET"]),
        Route("/admin/clients/{name}", guarded(delete_client), methods=["DELETE"]),
        Route("/admin/users", guarded(list_users), methods=["GET"]),
        Route("/admin/users", guarded(add_user), methods=["POST"]),
        Route("/admin/users/{name}", guarded(get_user), methods=["GET"]),
        Route("/admin/users/{name}", guarded(delete_user), methods=["DELETE"]),
    ]


def _json(payload: Any, status: int = 200) -> Response:
    return JSONResponse(payload, status_code=status, headers=NO_STORE)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise RempartError(Category.TOO_LARGE, "Body too large")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RempartError(Category.INCORRECT, "The body is not JSON") from None
    if not isinstance(body, dict):
        raise RempartError(Category.INCORRECT, "The body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, required: bool = False) -> Any:
    value = body.get(name)
    if value is None and required:
        raise RempartError(Category.INCORRECT, f"{name} is required")
    if value is not None and not isinstance(value, str):
        raise RempartError(Category.INCORRECT, f"{name} must be a string")
    return value


async def list_clients(request: Request, server: AuthorizationServer) -> Response:
    return _json([client_json(c) for c in await server.store.clients()])


async def add_client(request: Request, server: AuthorizationServer) -> Response:
    body = await _body(request)
    uris = body.get("redirect_uris") or []
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise RempartError(Category.INCORRECT, "redirect_uris must be a list of strings")
    jwks = body.get("jwks")
    spec = ClientSpec(
        _text(body, "client_id", True),
        _text(body, "scope", True),
        jwks if isinstance(jwks, dict) else None,
        _text(body, "jwks_url"),
        tuple(uris),
        body.get("public") is True,
    )
    client = client_record(spec)
    await server.store.put_client(client)
    return _json(client_json(client), 201)


async def get_client(request: Request, server: AuthorizationServer) -> Response:
    client = await server.store.client(request.path_params["name"])
    if client is None:
        raise RempartError(Category.NOT_FOUND, "Unknown client")
    return _json(client_json(client))


async def delete_client(request: Request, server: AuthorizationServer) -> Response:
    if not await disable_client(server.store, request.path_params["name"]):
        raise RempartError(Category.NOT_FOUND, "Unknown client")
    return Response(status_code=204)


async def list_users(request: Request, server: AuthorizationServer) -> Response:
    return _json([user_json(u) for u in await server.store.users()])


async def add_user(request: Request, server: AuthorizationServer) -> Response:
    body = await _body(request)
    spec = UserSpec(
        _text(body, "username", True),
        _text(body, "password", True),
        _text(body, "fhir_user"),
        _text(body, "role"),
        _text(body, "end_date"),
    )
    user = await asyncio.to_thread(user_record, spec)  # argon2 takes tens of ms
    await server.store.put_user(user)
    return _json(user_json(user, enrol=True), 201)


async def get_user(request: Request, server: AuthorizationServer) -> Response:
    user = await server.store.user(request.path_params["name"])
    if user is None:
        raise RempartError(Category.NOT_FOUND, "Unknown user")
    return _json(user_json(user))


async def delete_user(request: Request, server: AuthorizationServer) -> Response:
    if not await disable_user(server.store, request.path_params["name"]):
        raise RempartError(Category.NOT_FOUND, "Unknown user")
    return Response(status_code=204)
