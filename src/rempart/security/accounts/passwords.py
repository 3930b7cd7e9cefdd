"""Password hashing and the password policy of user accounts.

Hashes are argon2id PHC strings (RFC 9106 §4) with the parameters of the OWASP
Password Storage Cheat Sheet. Passwords are NFKC-normalised before hashing and their
length is counted in code points (NIST SP 800-63B §5.1.1.2). ``burn_time`` spends the
cost of one verification so that an unknown username takes as long as a known one.
"""

from __future__ import annotations

import functools
import secrets
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import Argon2Error, InvalidHashError

# OWASP's argon2id configurations trade memory for passes; we take its 19 MiB row
# (m=19456 KiB, p=1) with one pass more than its t=2: about 35 ms here. 19 MiB per
# login in flight keeps a flood of logins from exhausting the server's memory.
HASHER = PasswordHasher(time_cost=3, memory_cost=19456, parallelism=1, type=Type.ID)
"""The hasher of new hashes (argon2id, t=3, m=19 MiB, p=1)."""

MIN_LENGTH = 12
MAX_LENGTH = 1024

# Very common passwords long enough to pass the length rule (shorter ones are refused
# anyway). A site wanting a full breached-password list checks it before this.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012", "1234567890123", "12345678901234", "123456789123",
        "111111111111", "000000000000", "123123123123", "987654321098",
        "1q2w3e4r5t6y", "1qaz2wsx3edc", "qwertyuiopas", "qwertyuiop123",
        "qwerty123456", "qwertyqwerty", "azertyuiop12", "azerty123456",
        "asdfghjkl123", "zxcvbnm12345", "abcdefghijkl", "abc123456789",
        "abcd12345678", "password1234", "password1234!", "password123!",
        "passwordpassword", "password12345", "passw0rd1234", "p@ssw0rd1234",
        "motdepasse123", "motdepasse1234", "iloveyou1234", "letmein12345",
        "welcome12345", "welcome123456", "changeme1234", "changeme123!",
        "administrator", "administrateur", "admin1234567", "adminadmin12",
        "trustno1trustno1", "football1234", "baseball1234", "sunshine1234",
        "princess1234", "dragon123456", "monkey123456", "superman1234",
        "rempart12345", "rempartrempart", "hopital12345", "hospital1234",
    }
)  # fmt: skip


def _secret(pw: str) -> bytes:
    # surrogatepass: a lone surrogate from a form must not make hashing raise.
    return unicodedata.normalize("NFKC", pw).encode("utf-8", "surrogatepass")


def hash_password(pw: str, *, hasher: PasswordHasher = HASHER) -> str:
    """The argon2id PHC string of ``pw`` (``hasher`` is for fast tests only)."""
    return hasher.hash(_secret(pw))


def verify_password(hash: str, pw: str) -> bool:
    """Whether ``pw`` matches ``hash``; False, never an error, for a malformed hash.

    The parameters are read from the hash itself, so old hashes still verify.
    """
    try:
        return HASHER.verify(hash, _secret(pw))
    except (Argon2Error, InvalidHashError):
        return False


def needs_rehash(hash: str) -> bool:
    """Whether ``hash`` was made with other parameters than today's (or is malformed)."""
    try:
        return HASHER.check_needs_rehash(hash)
    except (Argon2Error, InvalidHashError):
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, computed once, on first use (not at import)."""
    return hash_password(secrets.token_urlsafe(24))


def burn_time(pw: str) -> None:
    """Spend what verifying ``pw`` against a real account would; the result is moot."""
    verify_password(dummy_hash(), pw)


def check_password_policy(pw: str) -> str | None:
    """The reason ``pw`` is refused as a new password, or None when it is acceptable."""
    length = len(unicodedata.normalize("NFKC", pw))
    if length < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    if length > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if pw.casefold() in COMMON_PASSWORDS or len(set(pw)) == 1:
        return "too common"
    return None
