"""The login decision of the authorization server's form, and its guessing defence.

NIST SP 800-63B §5.2.2 (rate limiting): after ``max_failures_before_lock``
consecutive failures an account is locked, for a time that doubles with each further
failure up to a ceiling. SMART App Launch 2.2 leaves user authentication to the
server; ours asks a password (``passwords``) and a TOTP code (``totp``, RFC 6238).

What a guesser learns is kept to the least: an unknown username costs the same time as
a known one, password and code are both always checked so neither is singled out, and
a disabled or expired account is only said so to someone who proved its credentials.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from enum import Enum

from rempart.security.accounts.passwords import burn_time, verify_password
from rempart.security.accounts.totp import accepted_step
from rempart.storage.auth_ports import AuthStore, LoginState, UserRecord

# Past 2**30 the lock is at its ceiling anyway; the cap keeps the float from overflowing.
_MAX_DOUBLINGS = 30


@dataclass(frozen=True)
class LoginPolicy:
    """How logins are checked and how guessing is slowed down."""

    max_failures_before_lock: int = 5
    """Consecutive failures after which the account is locked."""
    base_lock_seconds: float = 60
    """The first lock's length; each further failure doubles it."""
    max_lock_seconds: float = 3600
    """The longest lock, however many failures."""
    require_totp: bool = True
    """Ask the TOTP code too. False only where another factor is checked upstream."""


_SWAP_ATTEMPTS = 16
"""Retries of a failure count under contention (each retry reads the new state)."""


class LoginOutcome(Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    """Unknown user, wrong password or wrong code: the caller cannot tell which."""
    LOCKED = "locked"
    """Too many failures: nothing was checked."""
    EXPIRED = "expired"
    """Right credentials, but the account's end date has passed."""
    DISABLED = "disabled"
    """Right credentials, but the account is disabled."""


async def check_login(
    store: AuthStore,
    username: str,
    password: str,
    totp_code: str,
    now: float,
    policy: LoginPolicy,
    today: datetime.date | None = None,
) -> tuple[LoginOutcome, UserRecord | None]:
    """Decide one login attempt and record its effect on the account's login state.

    The user is returned with OK, DISABLED and EXPIRED (credentials proven), else None.
    ``today`` defaults to the UTC date of ``now``.
    """
    user = await store.user(username)
    if user is None:
        await asyncio.to_thread(burn_time, password)
        return LoginOutcome.BAD_CREDENTIALS, None
    state = await store.login_state(username)
    if state.locked_until > now:
        await asyncio.to_thread(burn_time, password)
        return LoginOutcome.LOCKED, None
    step = await _proven_step(user, password, totp_code, now, state, policy)
    if step is None:
        await _count_failure(store, username, state, now, policy)
        return LoginOutcome.BAD_CREDENTIALS, None
    if not await store.swap_login_state(username, state, LoginState(last_totp_step=step)):
        # Another attempt changed the state meanwhile (a failure, or this very code):
        # this one proves nothing.
        return LoginOutcome.BAD_CREDENTIALS, None
    return _standing(user, today if today is not None else _utc_date(now)), user


async def _count_failure(
    store: AuthStore, username: str, state: LoginState, now: float, policy: LoginPolicy
) -> None:
    """Adds one failure, retrying on concurrent changes so that none is lost."""
    for _ in range(_SWAP_ATTEMPTS):
        if await store.swap_login_state(username, state, after_failure(state, now, policy)):
            return
        state = await store.login_state(username)


def account_active(user: UserRecord, today: datetime.date) -> bool:
    """Not disabled, and ``today`` not after its end date (an unreadable one has passed)."""
    return not user.disabled and not _expired(user, today)


def after_failure(state: LoginState, now: float, policy: LoginPolicy) -> LoginState:
    """The login state after one more failure, locked once failures reach the limit."""
    failures = state.failures + 1
    over = failures - policy.max_failures_before_lock
    if over < 0:
        return LoginState(failures, state.locked_until, state.last_totp_step)
    lock = policy.base_lock_seconds * 2.0 ** min(over, _MAX_DOUBLINGS)
    locked_until = now + min(policy.max_lock_seconds, lock)
    return LoginState(failures, locked_until, state.last_totp_step)


async def _proven_step(
    user: UserRecord,
    password: str,
    totp_code: str,
    now: float,
    state: LoginState,
    policy: LoginPolicy,
) -> int | None:
    """The TOTP step to remember when both factors are right, else None."""
    # Both are always checked, so a failure does not say which factor was wrong.
    # argon2 releases the GIL: hashing in a thread keeps the event loop serving.
    password_ok = await asyncio.to_thread(verify_password, user.password_hash, password)
    step: int | None = state.last_totp_step
    if policy.require_totp:
        step = accepted_step(user.totp_secret, totp_code, now, state.last_totp_step)
    return step if password_ok else None


def _standing(user: UserRecord, today: datetime.date) -> LoginOutcome:
    if user.disabled:
        return LoginOutcome.DISABLED
    if _expired(user, today):
        return LoginOutcome.EXPIRED
    return LoginOutcome.OK


def _expired(user: UserRecord, today: datetime.date) -> bool:
    if user.end_date is None:
        return False
    try:
        return today > datetime.date.fromisoformat(user.end_date)
    except ValueError:
        return True  # Fail closed: an end date nobody can read has passed.


def _utc_date(now: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC).date()
