"""TOTP second factor (rempart.security.accounts.totp, RFC 6238)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from rempart.security.accounts.totp import accepted_step, new_secret, provisioning_uri

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_700_000_015.0
STEP = int(NOW // 30)


def code_at(t: float) -> str:
    return pyotp.TOTP(SECRET).at(t)


def test_new_secret_is_160_bit_base32() -> None:
    secret = new_secret()
    assert len(base64.b32decode(secret)) == 20
    assert secret != new_secret()


def test_provisioning_uri() -> None:
    uri = urlsplit(provisioning_uri(SECRET, "alice"))
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/Rempart:alice")
    assert parse_qs(uri.query) == {"secret": [SECRET], "issuer": ["Rempart"]}


def test_current_code_accepted() -> None:
    assert accepted_step(SECRET, code_at(NOW), NOW, 0) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_of_drift_accepted(offset: int) -> None:
    assert accepted_step(SECRET, code_at(NOW + 30 * offset), NOW, 0) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_two_steps_off_refused(offset: int) -> None:
    assert accepted_step(SECRET, code_at(NOW + 30 * offset), NOW, 0) is None


def test_replay_refused() -> None:
    step = accepted_step(SECRET, code_at(NOW), NOW, 0)
    assert step is not None
    assert accepted_step(SECRET, code_at(NOW), NOW + 5, step) is None


def test_older_code_refused_after_newer() -> None:
    assert accepted_step(SECRET, code_at(NOW - 30), NOW, STEP) is None
    assert accepted_step(SECRET, code_at(NOW + 30), NOW, STEP) == STEP + 1


def test_wrong_code_refused() -> None:
    wrong = f"{(int(code_at(NOW)) + 1) % 1_000_000:06d}"
    assert accepted_step(SECRET, wrong, NOW, 0) is None


@pytest.mark.parametrize("transform", ["five", "seven", "letter", "unicode", "space"])
def test_malformed_codes_refused(transform: str) -> None:
    good = code_at(NOW)
    code = {
        "five": good[:5],
        "seven": good + "0",
        "letter": good[:5] + "a",
        "unicode": good[:5] + "\u0661",  # ARABIC-INDIC DIGIT ONE: isdigit() but not ASCII
        "space": " " + good[:5],
    }[transform]
    assert accepted_step(SECRET, code, NOW, 0) is None
