"""The authorization server, assembled from its parts (one object per process)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rempart.config import AuthSettings
from rempart.security.accounts.login import LoginPolicy
from rempart.security.oauth.assertion import ClientAuthenticator
from rempart.security.oauth.authorize import Authorization
from rempart.security.oauth.introspection import Introspection
from rempart.security.oauth.jwks_fetch import FetchPolicy, JwksCache
from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.token_endpoint import TokenEndpoint
from rempart.security.oauth.tokens import Tokens
from rempart.storage.auth_ports import AuthStore, ReplayCache
from rempart.storage.crypto import secret_file


@dataclass
class AuthorizationServer:
    store: AuthStore
    replay: ReplayCache
    keys: SigningKeys
    tokens: Tokens
    token_endpoint: TokenEndpoint
    authorization: Authorization
    introspection: Introspection
    browser_key: bytes
    """Ties a login form to the browser that opened it (cookie MAC), in every process."""

    @classmethod
    def build(
        cls, store: AuthStore, replay: ReplayCache, keys_dir: Path, settings: AuthSettings
    ) -> AuthorizationServer:
        keys = SigningKeys(keys_dir / "signing-keys.json")
        tokens = Tokens(keys, store, min(settings.access_token_seconds, 300))
        policy = FetchPolicy(
            allow_private=settings.jwks_allow_private, https_only=settings.jwks_https_only
        )
        clients = ClientAuthenticator(
            store, replay, JwksCache(policy), settings.max_assertion_seconds
        )
        token_endpoint = TokenEndpoint(store, tokens, clients, settings)
        login = LoginPolicy(require_totp=settings.require_totp)
        return cls(
            store,
            replay,
            keys,
            tokens,
            token_endpoint,
            Authorization(store, settings, login),
            Introspection(store, tokens, token_endpoint),
            secret_file(keys_dir / "login.key", "login form"),
        )

    async def close(self) -> None:
        await self.replay.close()
        await self.store.close()
