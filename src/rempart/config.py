"""Typed settings, one dataclass per feature, loaded once from the environment.

Defaults are the safe ones. ``load_settings`` is the only place that reads the
environment; ``create_app(settings)`` and the CLI receive the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DATA_DIR = "./rempart-data"


@dataclass(frozen=True)
class StorageSettings:
    """Where resources live."""

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    """Directory for the embedded SQLite database and the key files."""
    database_url: str | None = None
    """``sqlite:///path/file.db`` or ``postgresql://…``; default: SQLite in data_dir."""
    postgres_schema: str = "rempart"
    """PostgreSQL schema holding Rempart's tables."""
    pool_size: int = 16
    """Largest number of PostgreSQL connections one process opens."""
    group_commit_max: int = 256
    """Most writes the SQLite writer commits in one transaction (one fsync)."""

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'rempart.db'}"


@dataclass(frozen=True)
class CryptoSettings:
    """Encryption at rest of resource bodies (AES-256-GCM)."""

    key_file: Path | None = None
    """Key ring file; default ``<data_dir>/keys/data-keys.json`` (created 0600)."""
    env_key: str | None = None
    """A base64 256-bit key given by the operator (REMPART_DATA_KEY); used alone."""


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on what one request may ask for."""

    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted (413 beyond)."""
    default_count: int = 50
    """Page size when the caller gives no ``_count``."""
    max_count: int = 500
    """Largest page size a caller may ask for."""
    max_included: int = 1000
    """Most resources ``_include``/``_revinclude`` add to one page."""
    include_depth: int = 3
    """Most rounds of ``:iterate`` includes."""
    chain_depth: int = 3
    """Most levels of chained parameters and nested ``_has``."""
    max_bundle_entries: int = 1000
    """Most entries in a batch or transaction Bundle (413 beyond)."""
    request_seconds: float = 30.0
    """Longest a read or search may take before it is abandoned with 503 (writes are
    not cut short: a write stopped mid-way could still commit)."""


@dataclass(frozen=True)
class ServerSettings:
    """How the HTTP server listens."""

    host: str = "127.0.0.1"
    """Address to bind. Loopback only until authentication is in place."""
    port: int = 8080
    """TCP port."""
    base_url: str | None = None
    """Public base of the FHIR API used in links; default from the request."""
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    """Host header names served (any port); the base_url's host is added. Others get
    400, which stops DNS rebinding: a web page cannot reach the API under its own name."""


@dataclass(frozen=True)
class AuthSettings:
    """The SMART on FHIR authorization server (``security/oauth``)."""

    access_token_seconds: int = 300
    """Lifetime of access tokens (at most 300: SMART Backend Services)."""
    refresh_token_seconds: int = 8 * 3600
    """Lifetime of a refresh token family (``online_access``; a working day)."""
    offline_refresh_seconds: int = 30 * 24 * 3600
    """Lifetime of a refresh token family granted ``offline_access``."""
    code_seconds: int = 60
    """Lifetime of an authorization code."""
    login_seconds: int = 600
    """Time a user has to log in and consent after the authorization request."""
    max_assertion_seconds: int = 300
    """Furthest ``exp`` a client assertion may carry (SMART: five minutes)."""
    require_totp: bool = True
    """Second factor mandatory at login."""
    jwks_allow_private: bool = False
    """Fetch client JWKS from private or loopback addresses (tests and labs only)."""
    jwks_https_only: bool = True
    """Fetch client JWKS over HTTPS only."""
    redis_url: str | None = None
    """Redis shared by several processes (assertion ``jti`` replay cache)."""


@dataclass(frozen=True)
class RateLimitSettings:
    """Sliding-window rate limits (``security/ratelimit``); shared through Redis when
    ``auth.redis_url`` is set, else kept in each process's memory."""

    enabled: bool = True
    """Apply the limits at all (REMPART_RATELIMIT_ENABLED=0 turns them off)."""
    ip_per_minute: int = 1200
    """Requests one client address may send per minute, before authentication."""
    auth_per_minute: int = 30
    """Token requests and login attempts one client address may send per minute."""
    client_per_minute: int = 1200
    """Cost units a backend client may spend per minute (a read costs 1, a search 5)."""
    user_per_minute: int = 600
    """Cost units a user (whatever the app) may spend per minute."""
    key_prefix: str = "rempart:ratelimit"
    """Prefix of the Redis keys: deployments sharing one Redis must differ."""


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail (``security/audit``; docs/audit.md)."""

    checkpoint_seconds: float = 60.0
    """How often each server process signs a checkpoint of the chain, when it grew."""
    max_search_days: int = 31
    """Widest date range one ``GET /fhir/AuditEvent`` search may cover."""
    retention_days: int = 3650
    """How long records are kept before ``rempart audit purge`` may remove them (once
    exported)."""


@dataclass(frozen=True)
class Settings:
    """Everything Rempart needs to run, built once."""

    storage: StorageSettings = field(default_factory=StorageSettings)
    crypto: CryptoSettings = field(default_factory=CryptoSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    ratelimit: RateLimitSettings = field(default_factory=RateLimitSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    data_dir: str | None = None,
    database_url: str | None = None,
) -> Settings:
    """Settings from explicit arguments first, then the environment, then defaults."""
    env = os.environ if env is None else env
    directory = Path(data_dir or env.get("REMPART_DATA_DIR") or DEFAULT_DATA_DIR)
    storage = StorageSettings(
        data_dir=directory,
        database_url=database_url or env.get("REMPART_DATABASE_URL") or None,
        postgres_schema=env.get("REMPART_PG_SCHEMA", "rempart"),
    )
    crypto = CryptoSettings(env_key=env.get("REMPART_DATA_KEY") or None)
    limits = _limits(env)
    server = ServerSettings(base_url=env.get("REMPART_BASE_URL") or None)
    if env.get("REMPART_ALLOWED_HOSTS"):
        hosts = tuple(h.strip() for h in env["REMPART_ALLOWED_HOSTS"].split(",") if h.strip())
        server = replace(server, allowed_hosts=hosts)
    auth = AuthSettings(
        redis_url=env.get("REMPART_REDIS_URL") or None,
        jwks_allow_private=env.get("REMPART_JWKS_ALLOW_PRIVATE", "") == "1",
        jwks_https_only=env.get("REMPART_JWKS_ALLOW_HTTP", "") != "1",
    )
    return Settings(
        storage=storage,
        crypto=crypto,
        limits=limits,
        server=server,
        auth=auth,
        ratelimit=_ratelimit(env),
        audit=_audit(env),
    )


def _audit(env: Mapping[str, str]) -> AuditSettings:
    default = AuditSettings()
    return AuditSettings(
        checkpoint_seconds=float(
            env.get("REMPART_AUDIT_CHECKPOINT_SECONDS", default.checkpoint_seconds)
        ),
        max_search_days=int(env.get("REMPART_AUDIT_MAX_SEARCH_DAYS", default.max_search_days)),
        retention_days=int(env.get("REMPART_AUDIT_RETENTION_DAYS", default.retention_days)),
    )


def _limits(env: Mapping[str, str]) -> LimitSettings:
    """Each limit from ``REMPART_<NAME>`` (e.g. ``REMPART_MAX_COUNT``), else its default."""
    default = LimitSettings()
    values = {}
    for name in ("max_body_bytes", "default_count", "max_count", "max_included",
                 "include_depth", "chain_depth", "max_bundle_entries"):  # fmt: skip
        values[name] = int(env.get(f"REMPART_{name.upper()}", getattr(default, name)))
    seconds = float(env.get("REMPART_REQUEST_SECONDS", default.request_seconds))
    return LimitSettings(**values, request_seconds=seconds)


def _ratelimit(env: Mapping[str, str]) -> RateLimitSettings:
    default = RateLimitSettings()

    def number(name: str, value: int) -> int:
        return int(env.get(f"REMPART_RATELIMIT_{name}", value))

    return RateLimitSettings(
        enabled=env.get("REMPART_RATELIMIT_ENABLED", "1") != "0",
        ip_per_minute=number("IP_PER_MINUTE", default.ip_per_minute),
        auth_per_minute=number("AUTH_PER_MINUTE", default.auth_per_minute),
        client_per_minute=number("CLIENT_PER_MINUTE", default.client_per_minute),
        user_per_minute=number("USER_PER_MINUTE", default.user_per_minute),
        key_prefix=env.get("REMPART_RATELIMIT_PREFIX") or default.key_prefix,
    )
