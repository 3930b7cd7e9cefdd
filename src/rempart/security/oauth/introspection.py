"""Token introspection (RFC 7662) and revocation (RFC 7009).

Introspection needs an authenticated caller: a client assertion (it then learns only
about its own tokens) or a bearer token holding ``system/rempart.introspect``.
Revocation takes effect at once in every process: the token id (or the refresh
family) is blocked in the shared store, which every request consults.
"""

from __future__ import annotations

import time
from typing import Any

from rempart.security.oauth.endpoints import Endpoints
from rempart.security.oauth.errors import OAuthError
from rempart.security.oauth.token_endpoint import TokenEndpoint, refresh_hash
from rempart.security.oauth.tokens import InvalidToken, Tokens
from rempart.security.principal import Principal
from rempart.security.scopes import ADMIN_SCOPE, INTROSPECT_SCOPE
from rempart.storage.auth_ports import AuthStore

INACTIVE = {"active": False}


class Introspection:
    def __init__(self, store: AuthStore, tokens: Tokens, token_endpoint: TokenEndpoint) -> None:
        self._store = store
        self._tokens = tokens
        self._token_endpoint = token_endpoint

    async def introspect(
        self, form: dict[str, str], caller: Principal | None, ep: Endpoints
    ) -> dict[str, Any]:
        if caller is not None and {INTROSPECT_SCOPE, ADMIN_SCOPE} & set(caller.scopes):
            caller_client = None
        else:
            client = await self._token_endpoint.authenticate(form, ep, public_ok=False)
            caller_client = client.client_id
        try:
            token = await self._tokens.verify(form.get("token", ""), ep.issuer, ep.fhir_base)
        except InvalidToken:
            return INACTIVE
        if caller_client is not None and token.client_id != caller_client:
            return INACTIVE
        return _description(token, ep)

    async def revoke(self, form: dict[str, str], ep: Endpoints) -> None:
        """Revokes the caller's own token; anything else is ignored (RFC 7009 §2.2)."""
        client = await self._token_endpoint.authenticate(form, ep, public_ok=True)
        token = form.get("token", "")
        if not token:
            raise OAuthError("invalid_request", "no token to revoke")
        try:
            access = self._tokens.decode(token, ep.issuer, ep.fhir_base)
        except InvalidToken:
            await self._revoke_refresh(token, client.client_id)
            return
        if access.client_id == client.client_id:
            await self._store.block(f"jti:{access.token_id}", access.expires + 60)

    async def _revoke_refresh(self, token: str, client_id: str) -> None:
        record = await self._store.use_refresh(refresh_hash(token))
        if record is not None:
            # The owner revokes its family; another client holding it means it leaked.
            await self._token_endpoint.revoke_family(record.family)


def _description(token: Principal, ep: Endpoints) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "active": token.expires > time.time(),
        "scope": " ".join(token.scopes),
        "client_id": token.client_id,
        "sub": token.subject,
        "exp": int(token.expires),
        "aud": ep.fhir_base,
        "iss": ep.issuer,
        "token_type": "Bearer",
    }
    if token.fhir_user:
        answer["fhirUser"] = token.fhir_user
    if token.patient:
        answer["patient"] = token.patient
    return answer if answer["active"] else INACTIVE
