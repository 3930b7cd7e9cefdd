"""The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6; SMART App Launch 2.2 and
Backend Services §Obtaining an access token; RFC 9700 §4.14 refresh-token rotation).

* ``client_credentials``: backend clients, authenticated by ``private_key_jwt``;
  an access token of at most five minutes, no refresh token.
* ``authorization_code``: the code is taken once, bound to its client, redirect URI
  and PKCE challenge.
* ``refresh_token``: rotated at each use, bound to its client; a token that comes
  back after rotation revokes its whole family (and the access tokens it issued).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from rempart.config import AuthSettings
from rempart.security.accounts.login import account_active
from rempart.security.oauth.assertion import ClientAuthenticator
from rempart.security.oauth.authorize import code_key
from rempart.security.oauth.endpoints import Endpoints, account_end
from rempart.security.oauth.errors import OAuthError
from rempart.security.oauth.pkce import verifier_matches
from rempart.security.oauth.tokens import Grant, Tokens
from rempart.security.scopes import grant, split_scopes, well_formed
from rempart.storage.auth_ports import AuthStore, ClientRecord, RefreshRecord

REFRESH_SCOPES = ("offline_access", "online_access")


def refresh_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenEndpoint:
    def __init__(
        self,
        store: AuthStore,
        tokens: Tokens,
        clients: ClientAuthenticator,
        settings: AuthSettings,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._clients = clients
        self._settings = settings

    async def __call__(self, form: dict[str, str], endpoints: Endpoints) -> dict[str, Any]:
        kind = form.get("grant_type")
        if kind == "client_credentials":
            return await self._client_credentials(form, endpoints)
        if kind == "authorization_code":
            return await self._authorization_code(form, endpoints)
        if kind == "refresh_token":
            return await self._refresh(form, endpoints)
        raise OAuthError("unsupported_grant_type", "unknown grant_type")

    async def authenticate(
        self, form: dict[str, str], endpoints: Endpoints, public_ok: bool
    ) -> ClientRecord:
        """The calling client: by assertion, or by ``client_id`` alone if public."""
        if "client_assertion" in form or not public_ok:
            kinds = ("backend", "confidential")
            return await self._clients.authenticate(form, endpoints.token_url, kinds)
        client = await self._store.client(form.get("client_id", ""))
        if client is None or client.disabled or client.kind != "public":
            raise OAuthError("invalid_client", "unknown client, or not a public client")
        return client

    async def _client_credentials(self, form: dict[str, str], ep: Endpoints) -> dict[str, Any]:
        client = await self._clients.authenticate(form, ep.token_url, ("backend",))
        requested = split_scopes(form.get("scope"))
        if not requested or not all(map(well_formed, requested)):
            raise OAuthError("invalid_scope", "scope missing or malformed")
        scopes = [s for s in grant(requested, client.scopes) if s.startswith("system/")]
        if not scopes:
            raise OAuthError("invalid_scope", "no requested scope is allowed to this client")
        issued = Grant(client.client_id, client.client_id, False, tuple(scopes))
        return self._answer(issued, ep, None)

    async def _authorization_code(self, form: dict[str, str], ep: Endpoints) -> dict[str, Any]:
        client = await self.authenticate(form, ep, public_ok=True)
        key = code_key(form.get("code", ""))
        request = await self._store.take_grant(key)
        if request is None:
            await self._code_replayed(key)
            raise OAuthError("invalid_grant", "unknown or used code")
        family = secrets.token_urlsafe(12)
        await self._store.put_grant(f"{key}:used", {"family": family}, self._family_end())
        if request["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "foreign code")
        if form.get("redirect_uri") != request["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri differs from the request's")
        if not verifier_matches(form.get("code_verifier"), request["challenge"]):
            raise OAuthError("invalid_grant", "PKCE code_verifier missing or wrong")
        not_after = await self._user_end(request["username"])
        issued = _user_grant(client.client_id, request, tuple(request["scopes"]), family)
        answer = self._answer(issued, ep, not_after)
        if "openid" in issued.scopes:
            answer["id_token"] = self._tokens.id_token(issued, ep.issuer, request.get("nonce"))
        if _wants_refresh(request["scopes"]):
            answer["refresh_token"] = await self._new_refresh(issued, request, not_after)
        return answer

    async def _code_replayed(self, key: str) -> None:
        """A used code came back: what it issued is revoked (RFC 6749 §4.1.2)."""
        used = await self._store.peek_grant(f"{key}:used")
        if used is not None:
            await self.revoke_family(used["family"])

    def _family_end(self) -> float:
        return time.time() + self._settings.offline_refresh_seconds

    async def _refresh(self, form: dict[str, str], ep: Endpoints) -> dict[str, Any]:
        client = await self.authenticate(form, ep, public_ok=True)
        record = await self._store.use_refresh(refresh_hash(form.get("refresh_token", "")))
        if record is None:
            raise OAuthError("invalid_grant", "unknown refresh token")
        if record.used:
            await self.revoke_family(record.family)
            raise OAuthError("invalid_grant", "refresh token reused: family revoked")
        if record.client_id != client.client_id:
            # Another client holds this family's token: it leaked, so the family ends.
            await self.revoke_family(record.family)
            raise OAuthError("invalid_grant", "refresh token of another client")
        if record.expires < time.time():
            raise OAuthError("invalid_grant", "expired refresh token")
        request = record.grant
        not_after = await self._user_end(request["username"])
        scopes = tuple(request["scopes"])
        if form.get("scope"):
            requested = split_scopes(form["scope"])
            if not requested or any(s not in scopes for s in requested):
                raise OAuthError("invalid_scope", "scope beyond the original grant")
            scopes = tuple(requested)
        issued = _user_grant(client.client_id, request, scopes, record.family)
        answer = self._answer(issued, ep, not_after)
        answer["refresh_token"] = await self._new_refresh(issued, request, record.expires)
        return answer

    async def revoke_family(self, family: str) -> None:
        await self._store.revoke_family(family)
        await self._store.block(f"fam:{family}", self._family_end())

    async def _user_end(self, username: str) -> float | None:
        user = await self._store.user(username)
        if user is None or not account_active(user, datetime.now(UTC).date()):
            raise OAuthError("invalid_grant", "the account is disabled or past its end date")
        return account_end(user)

    async def _new_refresh(
        self, issued: Grant, request: dict[str, Any], not_after: float | None
    ) -> str:
        token = secrets.token_urlsafe(32)
        offline = "offline_access" in issued.scopes
        lifetime = (
            self._settings.offline_refresh_seconds
            if offline
            else self._settings.refresh_token_seconds
        )
        expires = time.time() + lifetime
        if not_after is not None:
            expires = min(expires, not_after)
        assert issued.family is not None
        record = RefreshRecord(
            refresh_hash(token), issued.family, issued.client_id, issued.subject, request, expires
        )
        await self._store.put_refresh(record)
        return token

    def _answer(self, issued: Grant, ep: Endpoints, not_after: float | None) -> dict[str, Any]:
        token = self._tokens.issue(issued, ep.issuer, ep.fhir_base, not_after)
        expires_in = self._tokens.lifetime
        if not_after is not None:
            expires_in = max(0, min(expires_in, int(not_after - time.time())))
        answer: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": " ".join(issued.scopes),
        }
        if issued.patient:
            answer["patient"] = issued.patient
        return answer


def _wants_refresh(scopes: list[str]) -> bool:
    return any(s in REFRESH_SCOPES for s in scopes)


def _user_grant(
    client_id: str, request: dict[str, Any], scopes: tuple[str, ...], family: str | None
) -> Grant:
    return Grant(
        client_id=client_id,
        subject=request["username"],
        is_user=True,
        scopes=scopes,
        fhir_user=request.get("fhir_user"),
        patient=request.get("patient"),
        family=family,
    )
