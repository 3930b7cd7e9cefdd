"""Password hashing and policy (rempart.security.accounts.passwords)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from rempart.security.accounts import passwords
from rempart.security.accounts.passwords import (
    burn_time,
    check_password_policy,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_default_hasher_is_argon2id_with_owasp_parameters() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    assert verify_password(hashed, "correct horse battery")
    assert not needs_rehash(hashed)


def test_roundtrip_and_wrong_password() -> None:
    hashed = hash_password("correct horse battery", hasher=FAST)
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse batterY")
    assert not verify_password(hashed, "")


def test_equivalent_unicode_forms_verify() -> None:
    hashed = hash_password("caf\u00e9 au lait noir", hasher=FAST)
    assert verify_password(hashed, "cafe\u0301 au lait noir")


@pytest.mark.parametrize("bad", ["", "garbage", "$argon2id$v=19$m=8,t=1,p=1$xx", "$2b$12$abc"])
def test_garbage_hash_is_false_not_an_error(bad: str) -> None:
    assert verify_password(bad, "whatever") is False
    assert needs_rehash(bad) is True


def test_lone_surrogate_does_not_raise() -> None:
    hashed = hash_password("ab\ud800cdefghijkl", hasher=FAST)
    assert verify_password(hashed, "ab\ud800cdefghijkl")
    assert not verify_password(hashed, "abcdefghijkl")


def test_weak_parameters_need_rehash() -> None:
    assert needs_rehash(hash_password("correct horse battery", hasher=FAST))


def test_dummy_hash_is_computed_once_with_strong_parameters() -> None:
    assert dummy_hash() is dummy_hash()
    assert not needs_rehash(dummy_hash())
    burn_time("anything")  # Returns nothing, raises nothing.


@pytest.mark.parametrize(
    ("pw", "reason"),
    [
        ("short", "shorter than 12 characters"),
        ("elevenchars", "shorter than 12 characters"),
        ("x" * 1025, "longer than 1024 characters"),
        ("Password1234", "too common"),
        ("123456789012", "too common"),
        ("aaaaaaaaaaaaaaa", "too common"),
    ],
)
def test_policy_refusals(pw: str, reason: str) -> None:
    assert check_password_policy(pw) == reason


@pytest.mark.parametrize("pw", ["twelve chars", "a long passphrase of words", "y" * 1023 + "z"])
def test_policy_accepts(pw: str) -> None:
    assert check_password_policy(pw) is None


def test_common_list_is_reachable() -> None:
    # Entries the length rule already refuses, or not casefolded, would never match.
    for pw in passwords.COMMON_PASSWORDS:
        assert len(pw) >= passwords.MIN_LENGTH and pw == pw.casefold()
