"""The login decision and its guessing defence (rempart.security.accounts.login)."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import replace
from typing import Any, cast

import pyotp
import pytest
from argon2 import PasswordHasher

from rempart.security.accounts.login import (
    LoginOutcome,
    LoginPolicy,
    account_active,
    after_failure,
    check_login,
)
from rempart.security.accounts.passwords import hash_password
from rempart.storage.auth_ports import AuthStore, LoginState, UserRecord

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "correct horse battery"
T0 = 1_700_000_000.0
POLICY = LoginPolicy()
ALICE = UserRecord("alice", hash_password(PASSWORD, hasher=FAST), SECRET)


class FakeStore:
    """Only the three AuthStore methods check_login uses, in memory."""

    def __init__(self, *users: UserRecord) -> None:
        self.users = {u.username: u for u in users}
        self.states: dict[str, LoginState] = {}

    async def user(self, username: str) -> UserRecord | None:
        return self.users.get(username)

    async def login_state(self, username: str) -> LoginState:
        return self.states.get(username, LoginState())

    async def save_login_state(self, username: str, state: LoginState) -> None:
        self.states[username] = state

    async def swap_login_state(self, username: str, old: LoginState, new: LoginState) -> bool:
        if self.states.get(username, LoginState()) != old:
            return False
        self.states[username] = new
        return True


def code(t: float) -> str:
    return pyotp.TOTP(SECRET).at(t)


def login(
    store: FakeStore,
    now: float,
    password: str = PASSWORD,
    totp_code: str | None = None,
    username: str = "alice",
    today: datetime.date | None = None,
) -> tuple[LoginOutcome, UserRecord | None]:
    otp = code(now) if totp_code is None else totp_code
    attempt = check_login(cast(AuthStore, store), username, password, otp, now, POLICY, today)
    return asyncio.run(attempt)


def fail_times(store: FakeStore, n: int, now: float) -> None:
    for i in range(n):
        assert login(store, now + i, password="wrong password!")[0] is LoginOutcome.BAD_CREDENTIALS


def test_success_returns_the_user_and_resets_failures() -> None:
    store = FakeStore(ALICE)
    fail_times(store, 3, T0)
    assert store.states["alice"].failures == 3
    assert login(store, T0 + 60) == (LoginOutcome.OK, ALICE)
    assert store.states["alice"] == LoginState(0, 0.0, int((T0 + 60) // 30))


def test_unknown_user_is_bad_credentials_and_saves_nothing() -> None:
    store = FakeStore(ALICE)
    assert login(store, T0, username="bob") == (LoginOutcome.BAD_CREDENTIALS, None)
    assert store.states == {}


def test_unknown_and_locked_still_spend_a_password_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    burned: list[str] = []
    monkeypatch.setattr("rempart.security.accounts.login.burn_time", burned.append)
    store = FakeStore(ALICE)
    login(store, T0, username="bob", password="guess one")
    store.states["alice"] = LoginState(failures=5, locked_until=T0 + 60)
    login(store, T0, password="guess two")
    assert burned == ["guess one", "guess two"]


def test_wrong_totp_with_good_password_is_a_failure() -> None:
    store = FakeStore(ALICE)
    assert login(store, T0, totp_code=code(T0 + 300)) == (LoginOutcome.BAD_CREDENTIALS, None)
    assert store.states["alice"].failures == 1


def test_replayed_totp_is_refused() -> None:
    store = FakeStore(ALICE)
    assert login(store, T0)[0] is LoginOutcome.OK
    assert login(store, T0 + 1, totp_code=code(T0))[0] is LoginOutcome.BAD_CREDENTIALS


def test_five_failures_lock_even_the_right_password_until_locked_until() -> None:
    store = FakeStore(ALICE)
    fail_times(store, 5, T0)
    locked_until = store.states["alice"].locked_until
    assert locked_until == T0 + 4 + 60
    assert login(store, T0 + 10) == (LoginOutcome.LOCKED, None)
    assert login(store, locked_until - 0.5)[0] is LoginOutcome.LOCKED
    assert store.states["alice"].failures == 5  # A locked attempt is not even counted.
    assert login(store, locked_until + 31)[0] is LoginOutcome.OK


def test_four_failures_do_not_lock() -> None:
    store = FakeStore(ALICE)
    fail_times(store, 4, T0)
    assert store.states["alice"].locked_until == 0.0
    assert login(store, T0 + 10)[0] is LoginOutcome.OK


def test_back_off_doubles_after_each_further_failure() -> None:
    store = FakeStore(ALICE)
    fail_times(store, 5, T0)
    first = store.states["alice"].locked_until
    fail_times(store, 1, first)
    assert store.states["alice"].locked_until == first + 120
    second = store.states["alice"].locked_until
    fail_times(store, 1, second)
    assert store.states["alice"].locked_until == second + 240


def test_back_off_stops_at_the_ceiling_and_never_overflows() -> None:
    for failures in (11, 12, 5000):
        state = after_failure(LoginState(failures=failures), T0, POLICY)
        assert state.locked_until == T0 + 3600
        assert state.failures == failures + 1


def test_failure_keeps_the_last_totp_step() -> None:
    state = after_failure(LoginState(failures=0, last_totp_step=42), T0, POLICY)
    assert state == LoginState(1, 0.0, 42)


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"disabled": True}, LoginOutcome.DISABLED),
        ({"end_date": "2023-11-13"}, LoginOutcome.EXPIRED),
    ],
)
def test_disabled_and_expired_only_revealed_with_good_credentials(
    changes: dict[str, Any], outcome: LoginOutcome
) -> None:
    user = replace(ALICE, **changes)
    store = FakeStore(user)
    assert login(store, T0, password="wrong password!") == (LoginOutcome.BAD_CREDENTIALS, None)
    assert login(store, T0 + 31) == (outcome, user)


def test_end_date_is_the_last_day_inclusive_in_utc() -> None:
    # T0 is 2023-11-14T22:13:20Z.
    store = FakeStore(replace(ALICE, end_date="2023-11-14"))
    assert login(store, T0)[0] is LoginOutcome.OK
    assert login(store, T0 + 2 * 3600)[0] is LoginOutcome.EXPIRED


def test_explicit_today_wins() -> None:
    store = FakeStore(replace(ALICE, end_date="2023-11-14"))
    assert login(store, T0, today=datetime.date(2023, 11, 15))[0] is LoginOutcome.EXPIRED


def test_totp_not_checked_when_not_required() -> None:
    store = FakeStore(ALICE)
    policy = LoginPolicy(require_totp=False)
    attempt = check_login(cast(AuthStore, store), "alice", PASSWORD, "", T0, policy)
    assert asyncio.run(attempt) == (LoginOutcome.OK, ALICE)
    assert store.states["alice"] == LoginState()


@pytest.mark.parametrize(
    ("changes", "active"),
    [
        ({}, True),
        ({"end_date": "2024-01-31"}, True),
        ({"end_date": "2024-01-30"}, False),
        ({"end_date": "not a date"}, False),
        ({"disabled": True}, False),
    ],
)
def test_account_active(changes: dict[str, Any], active: bool) -> None:
    user = replace(ALICE, **changes)
    assert account_active(user, datetime.date(2024, 1, 31)) is active


def test_concurrent_failures_are_all_counted() -> None:
    """Ten wrong attempts at once: the swap retries so that every one is counted, and
    the account ends locked."""
    store = FakeStore(ALICE)
    port = cast(AuthStore, store)

    async def attempts() -> None:
        await asyncio.gather(
            *(check_login(port, "alice", "wrong password!", "000000", T0, POLICY)
              for _ in range(10))
        )  # fmt: skip

    asyncio.run(attempts())
    assert store.states["alice"].failures == 10
    assert store.states["alice"].locked_until > T0


def test_one_totp_code_in_two_concurrent_logins_succeeds_once() -> None:
    store = FakeStore(ALICE)
    port = cast(AuthStore, store)

    async def attempts() -> list[tuple[LoginOutcome, UserRecord | None]]:
        return await asyncio.gather(
            *(check_login(port, "alice", PASSWORD, code(T0), T0, POLICY) for _ in range(2))
        )

    outcomes = [outcome for outcome, _ in asyncio.run(attempts())]
    assert sorted(o.value for o in outcomes) == ["bad_credentials", "ok"]
