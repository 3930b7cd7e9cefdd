"""Rate limit policy (costs, payer) and the limiter's budgets in memory; the store
failing open or closed against a Redis address where nothing listens."""

from __future__ import annotations

import asyncio

import pytest

from rempart.config import RateLimitSettings, load_settings
from rempart.errors import Category, RempartError
from rempart.security.access import BUNDLE, PERMISSIONS
from rempart.security.principal import Principal
from rempart.security.ratelimit import Decision, RateLimiter, cost, payer, policy, too_many

DEAD_REDIS = "redis://127.0.0.1:1/0"


def principal(is_user: bool) -> Principal:
    return Principal("alice" if is_user else "app", is_user, "app", ("user/*.rs",), "t", 0.0)


def test_every_gated_interaction_has_its_own_cost() -> None:
    assert set(PERMISSIONS) | {BUNDLE} == set(policy.COSTS)


@pytest.mark.parametrize(
    ("method", "shape", "expected"),
    [
        ("GET", "T/I", 1),
        ("GET", "T/I/_history/V", 1),
        ("POST", "T", 3),
        ("PUT", "T/I", 3),
        ("PATCH", "T/I", 3),
        ("DELETE", "T/I", 3),
        ("GET", "T", 5),
        ("POST", "T/_search", 5),
        ("GET", "", 5),
        ("GET", "T/I/C", 5),
        ("GET", "T/I/_history", 5),
        ("PUT", "T", 8),
        ("POST", "", 10),
        ("GET", "T/I/$", 20),
        ("GET", "?", 1),
    ],
)
def test_costs(method: str, shape: str, expected: int) -> None:
    assert cost(method, shape) == expected


def test_writes_cost_more_than_reads_and_searches_more_still() -> None:
    assert cost("GET", "T/I") < cost("POST", "T") < cost("GET", "T") < cost("GET", "T/I/$")


def test_users_pay_for_themselves_and_backend_clients_for_themselves() -> None:
    assert payer(principal(is_user=True)) == ("user", "alice")
    assert payer(principal(is_user=False)) == ("client", "app")


def test_settings_from_the_environment() -> None:
    env = {"REMPART_RATELIMIT_IP_PER_MINUTE": "7", "REMPART_RATELIMIT_ENABLED": "0"}
    loaded = load_settings(env).ratelimit
    assert (loaded.ip_per_minute, loaded.enabled) == (7, False)
    assert load_settings({}).ratelimit == RateLimitSettings()


def test_a_budget_is_spent_by_cost_and_refusals_say_when_to_come_back() -> None:
    async def run() -> list[Decision]:
        limiter = RateLimiter(RateLimitSettings(client_per_minute=20))
        spent = [await limiter.principal("client", "app", 5) for _ in range(4)]
        return [*spent, await limiter.principal("client", "app", 1)]

    *spent, refused = asyncio.run(run())
    assert all(d.allowed for d in spent)
    assert not refused.allowed
    assert (refused.limit, refused.remaining) == (20, 0)
    assert refused.reset is not None and 1 <= refused.reset <= 60
    error = too_many(refused)
    assert error.category is Category.TOO_MANY
    assert error.headers["retry-after"] == error.headers["ratelimit-reset"] == str(refused.reset)
    assert error.headers["ratelimit-limit"] == "20"


def test_budgets_are_kept_apart_by_kind_and_name() -> None:
    async def run() -> list[bool]:
        limiter = RateLimiter(RateLimitSettings(ip_per_minute=1, client_per_minute=1))
        first = await limiter.ip("192.0.2.1")
        return [
            first.allowed,
            (await limiter.ip("192.0.2.1")).allowed,
            (await limiter.ip("192.0.2.2")).allowed,
            (await limiter.principal("client", "192.0.2.1", 1)).allowed,
        ]

    assert asyncio.run(run()) == [True, False, True, True]


def test_a_charge_over_budget_is_a_429() -> None:
    async def run() -> None:
        limiter = RateLimiter(RateLimitSettings(user_per_minute=20))
        await limiter.charge(principal(is_user=True), "GET", "T/I/$")
        await limiter.charge(principal(is_user=False), "GET", "T/I/$")  # another budget
        await limiter.charge(principal(is_user=True), "GET", "T/I")

    with pytest.raises(RempartError) as caught:
        asyncio.run(run())
    assert caught.value.category is Category.TOO_MANY


def test_disabled_limits_allow_everything() -> None:
    async def run() -> list[bool]:
        limiter = RateLimiter(RateLimitSettings(enabled=False, ip_per_minute=1), DEAD_REDIS)
        await limiter.open()  # no store is touched
        return [(await limiter.ip("192.0.2.1")).allowed for _ in range(5)]

    assert asyncio.run(run()) == [True] * 5


def test_an_unreachable_store_fails_open_for_the_api_and_closed_for_credentials() -> None:
    async def run() -> tuple[bool, bool]:
        limiter = RateLimiter(RateLimitSettings(), DEAD_REDIS)
        try:
            api = await limiter.ip("192.0.2.1")
            paid = await limiter.principal("client", "app", 5)
            with pytest.raises(RempartError) as ip_closed:
                await limiter.ip("192.0.2.1", fail_closed=True)
            with pytest.raises(RempartError) as auth:
                await limiter.auth("192.0.2.1")
        finally:
            await limiter.close()
        assert ip_closed.value.category is auth.value.category is Category.UNAVAILABLE
        return api.allowed, paid.allowed

    assert asyncio.run(run()) == (True, True)


def test_a_server_configured_with_an_unreachable_store_does_not_open() -> None:
    limiter = RateLimiter(RateLimitSettings(), DEAD_REDIS)
    with pytest.raises(RempartError) as caught:
        asyncio.run(limiter.open())
    assert caught.value.category is Category.UNAVAILABLE
