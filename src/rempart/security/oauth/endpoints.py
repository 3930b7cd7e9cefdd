"""Where the authorization server's endpoints are, as the caller sees them, and the
discovery document (SMART App Launch 2.2, §Conformance: ``.well-known/smart-configuration``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rempart.security.scopes import ADMIN_SCOPE, AUDIT_SCOPE, INTROSPECT_SCOPE, USER_AUDIT_SCOPE
from rempart.storage.auth_ports import UserRecord

SUPPORTED_SCOPES = [
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "user/*.cruds",
    "system/*.cruds",
    ADMIN_SCOPE,
    INTROSPECT_SCOPE,
    AUDIT_SCOPE,
    USER_AUDIT_SCOPE,
]


@dataclass(frozen=True)
class Endpoints:
    origin: str
    """``scheme://host[:port]`` of this server, no trailing slash."""

    @property
    def fhir_base(self) -> str:
        return f"{self.origin}/fhir"

    @property
    def issuer(self) -> str:
        return self.fhir_base

    def url(self, name: str) -> str:
        return f"{self.origin}/auth/{name}"

    @property
    def token_url(self) -> str:
        return self.url("token")


def smart_configuration(endpoints: Endpoints) -> dict[str, Any]:
    return {
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.url("jwks"),
        "authorization_endpoint": endpoints.url("authorize"),
        "token_endpoint": endpoints.token_url,
        "introspection_endpoint": endpoints.url("introspect"),
        "revocation_endpoint": endpoints.url("revoke"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-offline",
            "permission-online",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
            "sso-openid-connect",
        ],
    }


def account_end(user: UserRecord) -> float | None:
    """The instant an account stops working: the end of its last day (UTC)."""
    if user.end_date is None:
        return None
    last = date.fromisoformat(user.end_date)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return end.timestamp()
