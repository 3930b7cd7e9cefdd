"""OAuth 2.0 error responses (RFC 6749 §5.2, RFC 6750 §3.1).

The caller gets the spec's code and a generic text; the detail is kept for the
audit trail and the log, never sent.
"""

from __future__ import annotations

GENERIC = {
    "invalid_request": "The request is malformed",
    "invalid_client": "Client authentication failed",
    "invalid_grant": "The grant is invalid, expired or revoked",
    "unauthorized_client": "This client may not use this grant",
    "unsupported_grant_type": "Unsupported grant type",
    "invalid_scope": "The requested scope is not allowed",
    "access_denied": "Access denied",
    "unsupported_response_type": "Unsupported response type",
    "invalid_token": "Invalid token",
    "insufficient_scope": "Insufficient scope",
    "temporarily_unavailable": "Temporarily unavailable",
}


class OAuthError(Exception):
    """A refusal with the spec's error code; ``detail`` is internal."""

    def __init__(
        self, error: str, detail: str, status: int | None = None, redirect: str | None = None
    ) -> None:
        super().__init__(f"{error}: {detail}")
        self.redirect = redirect
        """Where to send the user agent with the error (authorization endpoint)."""
        self.error = error
        self.detail = detail
        self.status = status or (401 if error == "invalid_client" else 400)

    @property
    def description(self) -> str:
        return GENERIC.get(self.error, "The request was refused")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
