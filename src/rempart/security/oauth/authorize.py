"""The authorization endpoint's front channel: request, login, consent, code
(RFC 6749 §4.1, RFC 7636, SMART App Launch 2.2 §Obtain authorization code).

An unknown client or a redirect URI that is not registered exactly is shown an error
page and never redirected (RFC 6749 §4.1.2.1). Every other error goes back to the
client's redirect URI with ``state``. The pending request lives server-side under an
unguessable transaction id; the user logs in (password and TOTP), then approves.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from rempart.config import AuthSettings
from rempart.security.accounts.login import LoginOutcome, LoginPolicy, check_login
from rempart.security.oauth.endpoints import Endpoints
from rempart.security.oauth.errors import OAuthError
from rempart.security.oauth.pkce import valid_challenge
from rempart.security.roles import within_rights
from rempart.security.scopes import grant, split_scopes, well_formed
from rempart.storage.auth_ports import AuthStore, ClientRecord, UserRecord

MAX_STATE = 512
LOGIN_FAILED = "Invalid credentials, or too many attempts: try again later."


class ShowError(Exception):
    """An error shown to the user on Rempart's page: the client cannot be trusted."""


@dataclass(frozen=True)
class Pending:
    """A valid request waiting for the user: render the login form for it."""

    tx: str
    client_id: str
    scopes: tuple[str, ...]


def redirect_to(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"


def code_key(code: str) -> str:
    return "code:" + hashlib.sha256(code.encode()).hexdigest()


class Authorization:
    def __init__(self, store: AuthStore, settings: AuthSettings, policy: LoginPolicy) -> None:
        self._store = store
        self._settings = settings
        self._policy = policy

    async def start(self, params: dict[str, str], endpoints: Endpoints) -> Pending:
        """Validate an authorization request; :class:`ShowError` or, for errors that
        may be sent back to the client, :class:`OAuthError` with ``redirect`` set."""
        client = await self._client(params)
        redirect_uri = params.get("redirect_uri", "")
        state = params.get("state", "")
        if len(state) > MAX_STATE or len(params.get("nonce", "")) > MAX_STATE:
            # Echoed back exactly or not at all: too long to keep, so no redirect.
            raise ShowError("The request is malformed.")

        def back(error: str, detail: str) -> OAuthError:
            query = {"error": error, "state": state, "iss": endpoints.issuer}
            return OAuthError(error, detail, redirect=redirect_to(redirect_uri, query))

        if params.get("response_type") != "code":
            raise back("unsupported_response_type", "response_type is not code")
        if not valid_challenge(params.get("code_challenge"), params.get("code_challenge_method")):
            raise back("invalid_request", "PKCE S256 code_challenge missing or not S256")
        if params.get("aud", "").rstrip("/") != endpoints.fhir_base:
            raise back("invalid_request", "aud is not this FHIR server")
        requested = split_scopes(params.get("scope"))
        if not requested or not all(map(well_formed, requested)):
            raise back("invalid_scope", "scope missing or malformed")
        scopes = grant(requested, client.scopes)
        if not scopes:
            raise back("invalid_scope", "no requested scope is allowed to this client")
        tx = secrets.token_urlsafe(32)
        request = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "scopes": scopes,
            "challenge": params["code_challenge"],
            "nonce": params.get("nonce", ""),
            "username": None,
        }
        expires = time.time() + self._settings.login_seconds
        await self._store.put_grant(f"tx:{tx}", request, expires)
        return Pending(tx, client.client_id, tuple(scopes))

    async def _client(self, params: dict[str, str]) -> ClientRecord:
        client = await self._store.client(params.get("client_id", ""))
        if client is None or client.disabled or client.kind == "backend":
            raise ShowError("Unknown client.")
        if params.get("redirect_uri") not in client.redirect_uris:
            raise ShowError("This redirect URI is not registered for the client.")
        return client

    async def pending(self, tx: str) -> dict[str, Any] | None:
        return await self._store.peek_grant(f"tx:{tx}")

    async def login(self, tx: str, form: dict[str, str]) -> dict[str, Any]:
        """The request once its user logged in; :class:`ShowError` if the login fails."""
        request = await self.pending(tx)
        if request is None:
            raise ShowError("This login request has expired. Start again from the app.")
        outcome, user = await check_login(
            self._store,
            form.get("username", "")[:256],
            form.get("password", "")[:1024],
            form.get("totp", "")[:16],
            time.time(),
            self._policy,
        )
        if outcome is not LoginOutcome.OK or user is None:
            raise ShowError(LOGIN_FAILED)
        request.update(_user_context(user, request["scopes"]))
        expires = time.time() + self._settings.login_seconds
        await self._store.put_grant(f"tx:{tx}", request, expires)
        return request

    async def decide(self, tx: str, approve: bool, endpoints: Endpoints) -> str:
        """The redirect that ends the flow: a code if approved, ``access_denied`` if not."""
        request = await self._store.take_grant(f"tx:{tx}")
        if request is None or not request.get("username"):
            raise ShowError("This login request has expired. Start again from the app.")
        back = {"state": request["state"], "iss": endpoints.issuer}
        if not approve:
            return redirect_to(request["redirect_uri"], {"error": "access_denied", **back})
        code = secrets.token_urlsafe(32)
        expires = time.time() + self._settings.code_seconds
        await self._store.put_grant(code_key(code), request, expires)
        return redirect_to(request["redirect_uri"], {"code": code, **back})


def _user_context(user: UserRecord, scopes: list[str]) -> dict[str, Any]:
    """Who logged in, and the scopes that make sense for them: ``launch/patient`` and
    ``patient/`` scopes need a patient in context, which only a patient's own account
    provides here (no patient picker)."""
    patient = None
    if user.fhir_user and user.fhir_user.startswith("Patient/"):
        patient = user.fhir_user.removeprefix("Patient/")
    scopes = within_rights(scopes, user)
    kept = [s for s in scopes if patient or not s.startswith(("patient/", "launch/patient"))]
    if "fhirUser" in kept and not user.fhir_user:
        kept.remove("fhirUser")
    wants_patient = any(s.startswith(("patient/", "launch/patient")) for s in kept)
    return {
        "username": user.username,
        "fhir_user": user.fhir_user,
        "patient": patient if wants_patient else None,
        "scopes": kept,
        "end_date": user.end_date,
    }
