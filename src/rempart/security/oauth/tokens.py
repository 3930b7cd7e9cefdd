"""JWT access tokens and ID tokens (RFC 9068 shape, SMART App Launch 2.2 §Token).

An access token carries its audience (the FHIR base), expiry, scopes, client,
subject and a token id. Verifying one checks the signature (ES256 only), ``iss``,
``aud``, ``exp`` and then the blocks: a revoked token, a revoked refresh family, a
disabled client or user is refused at once, not at expiry.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from rempart.security.oauth.signing import ALGORITHM, SigningKeys
from rempart.security.principal import Principal
from rempart.storage.auth_ports import AuthStore

CACHE_SIZE = 10_000
"""Verified tokens remembered per process (signature checks are the costly part)."""
LEEWAY = 5
"""Seconds of clock skew tolerated on ``exp``/``iat``."""


class InvalidToken(Exception):
    """The token is refused; the message is for the audit trail, never the caller."""


@dataclass(frozen=True)
class Grant:
    """What a token is issued for."""

    client_id: str
    subject: str
    is_user: bool
    scopes: tuple[str, ...]
    fhir_user: str | None = None
    patient: str | None = None
    family: str | None = None


class Tokens:
    def __init__(self, keys: SigningKeys, store: AuthStore, lifetime: int) -> None:
        self._keys = keys
        self._store = store
        self._lifetime = lifetime
        # token → (principal, issuer, audience) it was verified for
        self._verified: OrderedDict[str, tuple[Principal, str, str]] = OrderedDict()

    def issue(self, grant: Grant, issuer: str, audience: str, not_after: float | None) -> str:
        """A signed access token; its expiry never passes ``not_after`` (account end)."""
        now = int(time.time())
        expires = now + self._lifetime
        if not_after is not None:
            expires = min(expires, int(not_after))
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": grant.subject,
            "client_id": grant.client_id,
            "scope": " ".join(grant.scopes),
            "iat": now,
            "exp": expires,
            "jti": secrets.token_urlsafe(18),
            "sub_type": "user" if grant.is_user else "client",
        }
        optional = {"fhirUser": grant.fhir_user, "patient": grant.patient, "fam": grant.family}
        claims.update({k: v for k, v in optional.items() if v})
        return self._sign(claims)

    def id_token(self, grant: Grant, issuer: str, nonce: str | None) -> str:
        """OpenID Connect ID token for ``openid fhirUser`` (audience: the client)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": grant.client_id,
            "sub": grant.subject,
            "iat": now,
            "exp": now + self._lifetime,
        }
        if grant.fhir_user and "fhirUser" in grant.scopes:
            claims["fhirUser"] = f"{issuer}/{grant.fhir_user}"
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims)

    def _sign(self, claims: dict[str, Any]) -> str:
        kid, key = self._keys.private()
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})

    @property
    def lifetime(self) -> int:
        return self._lifetime

    async def verify(self, token: str, issuer: str, audience: str) -> Principal:
        """The principal of a valid token; :class:`InvalidToken` otherwise."""
        known = self._verified.get(token)
        if known is None or known[1] != issuer or known[2] != audience:
            principal = self.decode(token, issuer, audience)
            self._remember(token, (principal, issuer, audience))
        else:
            principal = known[0]
            if principal.expires + LEEWAY < time.time():
                raise InvalidToken("expired")
        if await self._store.blocked(principal.block_keys, time.time()):
            raise InvalidToken("revoked, or its client or user disabled")
        return principal

    def _remember(self, token: str, entry: tuple[Principal, str, str]) -> None:
        self._verified[token] = entry
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)

    def decode(self, token: str, issuer: str, audience: str) -> Principal:
        """Signature, issuer, audience and expiry checked; blocks are not."""
        claims = self._claims(token, issuer, audience)
        try:
            return Principal(
                subject=str(claims["sub"]),
                is_user=claims.get("sub_type") == "user",
                client_id=str(claims["client_id"]),
                scopes=tuple(str(claims["scope"]).split()),
                token_id=str(claims["jti"]),
                expires=float(claims["exp"]),
                fhir_user=claims.get("fhirUser"),
                patient=claims.get("patient"),
                family=claims.get("fam"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidToken("malformed claims") from exc

    def _claims(self, token: str, issuer: str, audience: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.public(str(header.get("kid", "")))
            if key is None or header.get("alg") != ALGORITHM:
                raise InvalidToken("unknown signing key or algorithm")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "jti", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}") from exc
        return claims
