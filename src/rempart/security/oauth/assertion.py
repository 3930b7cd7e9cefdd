"""Client authentication by ``private_key_jwt`` (RFC 7523 §3, SMART App Launch 2.2,
Backend Services §Authenticating: "Signature verification", "jku" and "jti" rules).

The assertion must be signed RS384 or ES384 with a key the client registered (by
value or at its JWKS URL), name the client as ``iss`` and ``sub``, the token URL as
``aud``, expire at most five minutes ahead, and carry a ``jti`` never seen before.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from rempart.security.oauth.errors import OAuthError
from rempart.security.oauth.jwks_fetch import JwksCache, JwksFetchError
from rempart.storage.auth_ports import AuthStore, ClientRecord, ReplayCache

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEY_TYPES = {"RS384": ("RSA", None), "ES384": ("EC", "P-384")}
LEEWAY = 5
"""Seconds of clock skew tolerated."""
MAX_ASSERTION_BYTES = 8192


def _refuse(detail: str) -> OAuthError:
    return OAuthError("invalid_client", detail)


class ClientAuthenticator:
    def __init__(
        self, store: AuthStore, replay: ReplayCache, jwks: JwksCache, max_seconds: int
    ) -> None:
        self._store = store
        self._replay = replay
        self._jwks = jwks
        self._max_seconds = max_seconds

    async def authenticate(
        self, form: dict[str, str], token_url: str, kinds: tuple[str, ...]
    ) -> ClientRecord:
        """The client a valid assertion in ``form`` proves; :class:`OAuthError` otherwise."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _refuse("missing or unsupported client_assertion_type")
        assertion = form.get("client_assertion", "")
        if not assertion or len(assertion) > MAX_ASSERTION_BYTES:
            raise _refuse("missing or oversized client_assertion")
        header, unverified = _unverified(assertion)
        client = await self._client(unverified.get("iss"), kinds)
        if form.get("client_id") not in (None, client.client_id):
            raise _refuse("client_id differs from the assertion's issuer")
        key = await self._key(client, header)
        claims = _verify(assertion, key, header["alg"], client.client_id, token_url)
        self._check_times(claims)
        await self._check_jti(client.client_id, claims)
        return client

    async def _client(self, issuer: Any, kinds: tuple[str, ...]) -> ClientRecord:
        if not isinstance(issuer, str) or not issuer:
            raise _refuse("assertion without iss")
        client = await self._store.client(issuer)
        if client is None or client.disabled or client.kind not in kinds:
            raise _refuse("unknown, disabled or wrong kind of client")
        return client

    async def _key(self, client: ClientRecord, header: dict[str, Any]) -> jwt.PyJWK:
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise _refuse("jku is not the client's registered JWKS URL")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("assertion without kid")
        jwk = _find(await self._keys(client, force=False), kid, header["alg"])
        if jwk is None and client.jwks_url:
            jwk = _find(await self._keys(client, force=True), kid, header["alg"])
        if jwk is None:
            raise _refuse("no registered key with this kid and algorithm")
        try:
            return jwt.PyJWK(jwk, algorithm=header["alg"])
        except jwt.PyJWTError as exc:
            raise _refuse("the registered key is unusable") from exc

    async def _keys(self, client: ClientRecord, force: bool) -> dict[str, Any]:
        if client.jwks is not None:
            return client.jwks
        if client.jwks_url is None:
            raise _refuse("client without keys")
        try:
            return await self._jwks.get(client.jwks_url, force=force)
        except JwksFetchError as exc:
            raise _refuse(f"JWKS fetch failed: {exc}") from exc

    def _check_times(self, claims: dict[str, Any]) -> None:
        if float(claims["exp"]) > time.time() + self._max_seconds + LEEWAY:
            raise _refuse("assertion exp more than five minutes ahead")

    async def _check_jti(self, client_id: str, claims: dict[str, Any]) -> None:
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise _refuse("bad jti")
        expires = float(claims["exp"]) + LEEWAY
        if not await self._replay.use_once(f"jti:{client_id}:{jti}", expires):
            raise _refuse("jti replayed")


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _refuse("assertion is not a JWT") from exc
    if header.get("alg") not in KEY_TYPES:
        raise _refuse("assertion algorithm not RS384 or ES384")
    if header.get("typ", "JWT") != "JWT":
        raise _refuse("assertion typ is not JWT")
    return header, claims


def _find(jwks: dict[str, Any], kid: str, alg: str) -> dict[str, Any] | None:
    kty, curve = KEY_TYPES[alg]
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("kid") != kid or jwk.get("kty") != kty:
            continue
        if curve is not None and jwk.get("crv") != curve:
            continue
        if jwk.get("alg", alg) == alg and "d" not in jwk:
            return jwk
    return None


def _verify(
    assertion: str, key: jwt.PyJWK, alg: str, client_id: str, token_url: str
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,
            algorithms=[alg],
            audience=token_url,
            issuer=client_id,
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "sub", "aud", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise _refuse(f"assertion refused: {type(exc).__name__}") from exc
    if claims.get("sub") != client_id:
        raise _refuse("assertion sub is not the client")
    return claims
