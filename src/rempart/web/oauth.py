"""HTTP side of the authorization server: discovery, JWKS, authorize (login and
consent pages), token, introspection, revocation.

Token-endpoint answers carry ``Cache-Control: no-store`` and ``Pragma: no-cache``
(RFC 6749 §5.1). Errors carry the spec's code and a generic text; the detail goes to
the audit trail (``note``) and is never sent. The audit also learns the client a
caller claims (verified when the answer is a success), the user name given at login
and the id of the access token issued; never a secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from rempart.security.oauth.authorize import ShowError
from rempart.security.oauth.endpoints import Endpoints, smart_configuration
from rempart.security.oauth.errors import OAuthError
from rempart.security.oauth.server import AuthorizationServer
from rempart.security.oauth.tokens import InvalidToken
from rempart.security.principal import Principal
from rempart.web.audit import note
from rempart.web.pages import consent_page, error_page, login_page

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
MAX_FORM_FIELDS = 32
MAX_FORM_BYTES = 64 * 1024
BROWSER_COOKIE = "rempart_login"
STALE_FORM = "Ce formulaire n'est plus valide. Recommencez depuis l'application."

ServerOf = Callable[[], AuthorizationServer]
EndpointsOf = Callable[[Request], Endpoints]


def oauth_routes(server_of: ServerOf, endpoints_of: EndpointsOf) -> list[Route]:
    """The routes, bound to the per-process server (built in the app's lifespan)."""

    def bind(
        handler: Callable[[Request, AuthorizationServer, Endpoints], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def call(request: Request) -> Response:
            return await handler(request, server_of(), endpoints_of(request))

        return call

    return [
        Route("/fhir/.well-known/smart-configuration", bind(discovery), methods=["GET"]),
        Route("/auth/jwks", bind(jwks), methods=["GET"]),
        Route("/auth/authorize", bind(authorize), methods=["GET"]),
        Route("/auth/login", bind(login), methods=["POST"]),
        Route("/auth/consent", bind(consent), methods=["POST"]),
        Route("/auth/token", bind(token), methods=["POST"]),
        Route("/auth/introspect", bind(introspect), methods=["POST"]),
        Route("/auth/revoke", bind(revoke), methods=["POST"]),
    ]


async def discovery(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    return JSONResponse(smart_configuration(ep))


async def jwks(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    return JSONResponse(server.keys.jwks(), headers={"cache-control": "max-age=60"})


async def authorize(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    params = dict(request.query_params)
    try:
        pending = await server.authorization.start(params, ep)
    except ShowError as error:
        note(request.scope, client=_claimed(params.get("client_id")), detail=str(error))
        return error_page(str(error))
    except OAuthError as error:
        note(request.scope, client=_claimed(params.get("client_id")), detail=error.detail)
        assert error.redirect is not None
        return RedirectResponse(error.redirect, status_code=303)
    note(request.scope, client=pending.client_id)
    page = login_page(pending.tx, pending.client_id)
    _bind_browser(page, server.browser_key, pending.tx, ep)
    return page


def _bind_browser(response: Response, key: bytes, tx: str, ep: Endpoints) -> None:
    """Ties the login to this browser: the form is only accepted with the cookie
    (login CSRF); the cookie is a MAC of the transaction id, nothing more."""
    response.set_cookie(
        BROWSER_COOKIE,
        _browser_mac(key, tx),
        httponly=True,
        samesite="strict",
        secure=ep.origin.startswith("https://"),
        path="/auth",
        max_age=900,
    )


def _browser_mac(key: bytes, tx: str) -> str:
    return hmac.new(key, tx.encode(), "sha256").hexdigest()


def _same_browser(request: Request, key: bytes, tx: str) -> bool:
    cookie = request.cookies.get(BROWSER_COOKIE, "")
    return hmac.compare_digest(cookie, _browser_mac(key, tx))


async def _browser_form(request: Request, key: bytes) -> dict[str, str] | None:
    """The login or consent form, if well-formed and posted by the browser that began."""
    try:
        form = await _form(request)
    except OAuthError:
        return None
    return form if _same_browser(request, key, form.get("tx", "")) else None


async def login(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    form = await _browser_form(request, server.browser_key)
    if form is None:
        return error_page(STALE_FORM)
    tx = form["tx"]
    note(request.scope, user=_claimed(form.get("username")))
    try:
        pending = await server.authorization.login(tx, form)
    except ShowError as error:
        note(request.scope, detail=f"login refused: {error}")
        request_state = await server.authorization.pending(tx)
        if request_state is None:
            return error_page(str(error))
        return login_page(tx, request_state["client_id"], str(error))
    note(request.scope, client=pending["client_id"])
    return consent_page(tx, pending["client_id"], pending["scopes"], pending["redirect_uri"])


async def consent(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    form = await _browser_form(request, server.browser_key)
    if form is None:
        return error_page(STALE_FORM)
    tx = form["tx"]
    try:
        target = await server.authorization.decide(tx, "approve" in form, ep)
    except ShowError as error:
        return error_page(str(error))
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(BROWSER_COOKIE, path="/auth")
    return response


async def token(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    try:
        form = await _form(request)
        note(request.scope, client=_client_of(form))
        answer = await server.token_endpoint(form, ep)
    except OAuthError as error:
        return _oauth_error(request, error)
    note(request.scope, token_id=_token_id(answer.get("access_token")))
    return JSONResponse(answer, headers=NO_STORE)


async def introspect(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    try:
        form = await _form(request)
        caller = await _bearer(request, server, ep)
        note(request.scope, principal=caller)
        answer = await server.introspection.introspect(form, caller, ep)
    except OAuthError as error:
        return _oauth_error(request, error)
    return JSONResponse(answer, headers=NO_STORE)


async def revoke(request: Request, server: AuthorizationServer, ep: Endpoints) -> Response:
    try:
        form = await _form(request)
        note(request.scope, client=_client_of(form))
        await server.introspection.revoke(form, ep)
    except OAuthError as error:
        return _oauth_error(request, error)
    return Response(status_code=200, headers=NO_STORE)


async def _bearer(request: Request, server: AuthorizationServer, ep: Endpoints) -> Principal | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        return await server.tokens.verify(header[7:].strip(), ep.issuer, ep.fhir_base)
    except InvalidToken as exc:
        raise OAuthError("invalid_client", f"introspection bearer refused: {exc}") from exc


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form, bounded; a parameter given twice is an error (RFC 6749 §3.1)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "body is not application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "form too large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "malformed form") from None
    if len({k for k, _ in pairs}) != len(pairs):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return dict(pairs)


def _oauth_error(request: Request, error: OAuthError) -> Response:
    note(request.scope, detail=f"{error.error}: {error.detail}")
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["www-authenticate"] = 'Bearer realm="rempart", error="invalid_client"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _claimed(value: str | None) -> str | None:
    """A name the caller gave, cut short, for the audit (not verified). A JSON claim may
    hold a lone surrogate, which no UTF-8 encoder takes: it becomes ``?``."""
    if not value:
        return None
    return value[:64].encode("utf-8", "replace").decode("utf-8")


def _client_of(form: dict[str, str]) -> str | None:
    """The client a token request claims to be: ``client_id``, else the ``iss`` of its
    assertion, read without verifying it (the token endpoint verifies it)."""
    if form.get("client_id"):
        return _claimed(form["client_id"])
    return _claimed(_unverified(form.get("client_assertion")).get("iss"))


def _token_id(token: Any) -> str | None:
    return _claimed(_unverified(token).get("jti")) if isinstance(token, str) else None


def _unverified(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return {k: v for k, v in claims.items() if isinstance(v, str)}
