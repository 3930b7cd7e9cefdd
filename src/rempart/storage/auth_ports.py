"""The port of the authorization server's own records (SMART App Launch 2.2, RFC 6749).

Clients, user accounts, short-lived grants (authorization codes, login transactions),
refresh-token families, one-time markers (assertion ``jti``) and blocks (revoked
tokens, families, disabled subjects). Kept apart from clinical resources: another
SQLite file, other tables on PostgreSQL. Times are Unix seconds (float).

Every method is safe across processes sharing one database: ``use_once``,
``take_grant`` and ``use_refresh`` are atomic, so two processes never both accept
the same ``jti``, code or refresh token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

CLIENT_KINDS = ("backend", "public", "confidential")
"""backend: client_credentials with private_key_jwt; public: authorization code with
PKCE and no secret; confidential: authorization code, authenticated by private_key_jwt."""


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    kind: str
    """One of :data:`CLIENT_KINDS`."""
    scopes: tuple[str, ...]
    """The scopes this client may be granted (SMART v1 or v2 syntax, wildcards allowed)."""
    redirect_uris: tuple[str, ...] = ()
    """Exact redirect URIs (authorization code clients)."""
    jwks: dict[str, Any] | None = None
    """The client's public keys, registered by value."""
    jwks_url: str | None = None
    """Or the URL the keys are fetched from (with an SSRF guard)."""
    created: float = 0.0
    disabled: bool = False


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    """argon2id hash (PHC string)."""
    totp_secret: str
    """Base32 TOTP secret (RFC 6238)."""
    fhir_user: str | None = None
    """``Patient/ID``, ``Practitioner/ID``… the FHIR resource this account is."""
    role: str | None = None
    end_date: str | None = None
    """Last day (YYYY-MM-DD, inclusive) the account may be used; None: no end."""
    disabled: bool = False
    created: float = 0.0


@dataclass(frozen=True)
class LoginState:
    """What defends one account against guessing."""

    failures: int = 0
    """Consecutive failed logins."""
    locked_until: float = 0.0
    """No login attempt is even checked before this time."""
    last_totp_step: int = 0
    """The last TOTP time step accepted: a code is never accepted twice."""


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    """SHA-256 (hex) of the refresh token; the token itself is never stored."""
    family: str
    """All tokens rotated from one authorization share a family."""
    client_id: str
    subject: str
    grant: dict[str, Any] = field(default_factory=dict)
    """What the tokens of this family carry (scopes, patient, fhirUser…)."""
    expires: float = 0.0
    used: bool = False
    """Set when the token was exchanged (rotated) or its family revoked."""


class AuthStore(Protocol):
    # Clients. put_* raise RempartError(CONFLICT) when the key exists and not replace.
    async def put_client(self, client: ClientRecord, *, replace: bool = False) -> None: ...
    async def client(self, client_id: str) -> ClientRecord | None: ...
    async def clients(self) -> list[ClientRecord]: ...
    async def disable_client(self, client_id: str) -> bool: ...

    # User accounts.
    async def put_user(self, user: UserRecord, *, replace: bool = False) -> None: ...
    async def user(self, username: str) -> UserRecord | None: ...
    async def users(self) -> list[UserRecord]: ...
    async def disable_user(self, username: str) -> bool: ...
    async def login_state(self, username: str) -> LoginState: ...
    async def save_login_state(self, username: str, state: LoginState) -> None: ...
    async def swap_login_state(self, username: str, old: LoginState, new: LoginState) -> bool:
        """Compare and set: writes ``new`` only if the state is still ``old``. Two
        processes checking logins of one account at once never lose a failure nor
        both accept one TOTP code."""
        ...

    # One-time markers: True the first time a key is used, False while it is remembered.
    async def use_once(self, key: str, expires: float) -> bool: ...

    # Short-lived grants: codes (taken once) and login transactions (read, replaced).
    async def put_grant(self, key: str, payload: dict[str, Any], expires: float) -> None: ...
    async def peek_grant(self, key: str) -> dict[str, Any] | None: ...
    async def take_grant(self, key: str) -> dict[str, Any] | None: ...

    # Refresh tokens. use_refresh marks the token used and returns it as it was before,
    # so a caller seeing used=True knows a rotated token came back (reuse).
    async def put_refresh(self, record: RefreshRecord) -> None: ...
    async def use_refresh(self, token_hash: str) -> RefreshRecord | None: ...
    async def revoke_family(self, family: str) -> None: ...

    # Blocks: a key (``jti:…``, ``fam:…``, ``sub:…``) refused until a time.
    async def block(self, key: str, until: float) -> None: ...
    async def blocked(self, keys: Sequence[str], now: float) -> bool: ...

    async def purge(self, now: float) -> int: ...
    async def close(self) -> None: ...


class ReplayCache(Protocol):
    """Where assertion ``jti`` values are remembered: the database, or Redis when shared."""

    async def use_once(self, key: str, expires: float) -> bool: ...
    async def close(self) -> None: ...
