"""Proof Key for Code Exchange, S256 only (RFC 7636 §4; SMART App Launch 2.2 requires
S256 and forbids ``plain``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def valid_challenge(challenge: str | None, method: str | None) -> bool:
    """An S256 challenge: 43 base64url characters (a SHA-256 digest)."""
    return method == "S256" and challenge is not None and CHALLENGE.fullmatch(challenge) is not None


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    if verifier is None or not VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
