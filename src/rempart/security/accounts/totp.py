"""Time-based one-time passwords, the second factor of user accounts (RFC 6238).

The authenticator-app defaults (RFC 6238 §4, §5.2): HMAC-SHA-1, 6 digits, 30-second
steps, one step of clock drift either way. A step once accepted is never accepted
again, nor any older one (RFC 6238 §5.2: "MUST NOT accept the second attempt").
"""

from __future__ import annotations

import hmac

import pyotp

DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1
"""Steps accepted either side of the current one (RFC 6238 §6)."""


def new_secret() -> str:
    """A fresh base32 secret of 160 bits, the length RFC 4226 §4 recommends."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str, issuer: str = "Rempart") -> str:
    """The ``otpauth://totp/…`` URI an authenticator app reads from a QR code."""
    return _totp(secret).provisioning_uri(name=username, issuer_name=issuer)


def accepted_step(secret: str, code: str, now: float, last_step: int) -> int | None:
    """The time step ``code`` belongs to, if it may be accepted now; else None.

    Accepted: exactly six ASCII digits, matching the current step or one either side,
    and later than ``last_step``. A secret that is not base32 raises ``ValueError``.
    """
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = _totp(secret)
    current = int(now // STEP_SECONDS)
    window = range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1)
    # Every candidate is compared, in constant time, so timing says nothing of which.
    matched = [s for s in window if hmac.compare_digest(totp.generate_otp(s), code)]
    fresh = [s for s in matched if s > last_step]
    return max(fresh) if fresh else None


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
