"""Step 4 of the request path: the bearer token becomes a :class:`Principal`
(RFC 6750 §2.1 and §3; SMART App Launch 2.2 §Access token).

A request without a token gets 401 with a bare ``WWW-Authenticate: Bearer`` challenge;
a bad, expired or revoked token gets ``error="invalid_token"``. The reason is logged
for the audit trail, never told to the caller.
"""

from __future__ import annotations

import logging
import re

from rempart.errors import Category, RempartError
from rempart.security.oauth.tokens import InvalidToken, Tokens
from rempart.security.principal import Principal

log = logging.getLogger("rempart.security")
TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]{16,4096}=*")
REALM = 'Bearer realm="rempart"'


def unauthorized(message: str, error: str | None) -> RempartError:
    challenge = f'{REALM}, error="{error}"' if error else REALM
    return RempartError(
        Category.UNAUTHORIZED, message, code="login", headers={"www-authenticate": challenge}
    )


def insufficient_scope(scope: str) -> RempartError:
    challenge = f'{REALM}, error="insufficient_scope", scope="{scope}"'
    return RempartError(
        Category.FORBIDDEN, "Insufficient scope", headers={"www-authenticate": challenge}
    )


class BearerAuthentication:
    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens

    async def principal(self, authorization: str | None, issuer: str, audience: str) -> Principal:
        if not authorization:
            raise unauthorized("Authentication required", None)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not TOKEN68.fullmatch(token):
            raise unauthorized("Invalid token", "invalid_request")
        try:
            return await self._tokens.verify(token, issuer, audience)
        except InvalidToken as exc:
            log.info("token refused: %s", exc)
            raise unauthorized("Invalid token", "invalid_token") from None
