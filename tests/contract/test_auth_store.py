"""The auth store's contract, run against every adapter (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import stat
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rempart.errors import Category, RempartError
from rempart.storage.auth_ports import (
    AuthStore,
    ClientRecord,
    LoginState,
    RefreshRecord,
    UserRecord,
)
from rempart.storage.auth_sql import DatabaseReplayCache
from rempart.storage.postgres.auth import open_postgres_auth
from rempart.storage.sqlite.auth import open_sqlite_auth

Opener = Callable[[], Awaitable[AuthStore]]
RACERS = 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a store on one fresh database; each call is another connection to it."""
    if request.param == "sqlite":

        async def sqlite() -> AuthStore:
            return open_sqlite_auth(tmp_path / "data" / "auth.db")

        return sqlite
    url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    return lambda: open_postgres_auth(url, schema)


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[AuthStore]:
    opened = await opener()
    yield opened
    await opened.close()


def soon() -> float:
    return time.time() + 60


def past() -> float:
    return time.time() - 1


CLIENT = ClientRecord(
    "app-1",
    "confidential",
    ("patient/*.rs", "openid"),
    ("https://app.example/cb", "https://app.example/cb2"),
    {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "BB", "kid": "k1"}]},
    None,
    1_700_000_000.5,
)
USER = UserRecord(
    "alice", "$argon2id$v=19$...", "JBSWY3DPEHPK3PXP", "Practitioner/p1", "doctor", "2030-12-31"
)


def refresh(token_hash: str, family: str = "fam-1") -> RefreshRecord:
    grant = {"scope": "patient/*.rs offline_access", "patient": "p1", "nested": {"a": [1, 2]}}
    return RefreshRecord(token_hash, family, "app-1", "alice", grant, soon())


@pytest.mark.anyio
async def test_clients_round_trip_with_tuples_and_dicts(store: AuthStore) -> None:
    await store.put_client(CLIENT)
    backend = ClientRecord("bot", "backend", ("system/*.rs",), jwks_url="https://bot/jwks")
    await store.put_client(backend)
    assert await store.client("app-1") == CLIENT
    assert await store.client("bot") == backend
    assert await store.client("nobody") is None
    assert await store.clients() == [CLIENT, backend]


@pytest.mark.anyio
async def test_put_client_refuses_an_existing_id_unless_replacing(store: AuthStore) -> None:
    await store.put_client(CLIENT)
    changed = ClientRecord("app-1", "public", ("launch",))
    with pytest.raises(RempartError) as caught:
        await store.put_client(changed)
    assert caught.value.category is Category.CONFLICT
    assert await store.client("app-1") == CLIENT
    await store.put_client(changed, replace=True)
    assert await store.client("app-1") == changed


@pytest.mark.anyio
async def test_disable_client(store: AuthStore) -> None:
    await store.put_client(CLIENT)
    assert await store.disable_client("app-1") is True
    assert await store.disable_client("nobody") is False
    disabled = await store.client("app-1")
    assert disabled is not None and disabled.disabled and disabled.scopes == CLIENT.scopes


@pytest.mark.anyio
async def test_users_round_trip_conflict_replace_and_disable(store: AuthStore) -> None:
    bob = UserRecord("bob", "h", "S", created=5.25)
    await store.put_user(USER)
    await store.put_user(bob)
    assert await store.user("alice") == USER
    assert await store.users() == [USER, bob]
    with pytest.raises(RempartError) as caught:
        await store.put_user(UserRecord("bob", "other", "T"))
    assert caught.value.category is Category.CONFLICT
    assert await store.user("bob") == bob
    await store.put_user(UserRecord("bob", "other", "T"), replace=True)
    assert await store.user("bob") == UserRecord("bob", "other", "T")
    assert (await store.disable_user("alice"), await store.disable_user("zed")) == (True, False)
    disabled = await store.user("alice")
    assert disabled is not None and disabled.disabled and await store.user("zed") is None


@pytest.mark.anyio
async def test_login_state_defaults_then_saves(store: AuthStore) -> None:
    assert await store.login_state("alice") == LoginState()
    await store.save_login_state("alice", LoginState(3, 1_800_000_000.5, 56_000_000))
    await store.save_login_state("bob", LoginState(1))
    assert await store.login_state("alice") == LoginState(3, 1_800_000_000.5, 56_000_000)
    await store.save_login_state("alice", LoginState(0, 0.0, 56_000_001))
    assert await store.login_state("alice") == LoginState(0, 0.0, 56_000_001)
    assert await store.login_state("bob") == LoginState(1)


@pytest.mark.anyio
async def test_swap_login_state_is_compare_and_set(store: AuthStore) -> None:
    first = LoginState(1, 0.0, 0)
    assert await store.swap_login_state("carol", LoginState(), first) is True
    assert await store.swap_login_state("carol", LoginState(), LoginState(9)) is False
    assert await store.login_state("carol") == first
    locked = LoginState(5, 1_800_000_000.25, 0)
    assert await store.swap_login_state("carol", first, locked) is True
    assert await store.login_state("carol") == locked


@pytest.mark.anyio
async def test_concurrent_swaps_from_one_state_let_exactly_one_win(store: AuthStore) -> None:
    await store.save_login_state("dave", LoginState(2, 0.0, 7))
    old = await store.login_state("dave")
    wins = await asyncio.gather(
        *(store.swap_login_state("dave", old, LoginState(3, 0.0, 7 + n)) for n in range(20))
    )
    assert wins.count(True) == 1
    assert (await store.login_state("dave")).last_totp_step == 7 + wins.index(True)


@pytest.mark.anyio
async def test_use_once_accepts_a_key_once_until_it_expires(store: AuthStore) -> None:
    assert await store.use_once("jti:a", soon()) is True
    assert await store.use_once("jti:a", soon()) is False
    assert await store.use_once("jti:b", soon()) is True
    assert await store.use_once("jti:old", past()) is True
    assert await store.use_once("jti:old", soon()) is True
    assert await store.use_once("jti:old", soon()) is False


@pytest.mark.anyio
async def test_grants_are_peeked_replaced_and_taken_once(store: AuthStore) -> None:
    await store.put_grant("code:1", {"client_id": "app-1", "scopes": ["a", "b"]}, soon())
    assert await store.peek_grant("code:1") == {"client_id": "app-1", "scopes": ["a", "b"]}
    await store.put_grant("code:1", {"step": 2}, soon())
    assert await store.peek_grant("code:1") == {"step": 2}
    assert await store.take_grant("code:1") == {"step": 2}
    assert await store.take_grant("code:1") is None
    assert await store.peek_grant("code:1") is None
    assert await store.take_grant("never") is None


@pytest.mark.anyio
async def test_an_expired_grant_is_gone(store: AuthStore) -> None:
    await store.put_grant("code:old", {"x": 1}, past())
    assert await store.peek_grant("code:old") is None
    assert await store.take_grant("code:old") is None


@pytest.mark.anyio
async def test_refresh_use_returns_the_token_as_it_was(store: AuthStore) -> None:
    record = refresh("h1")
    await store.put_refresh(record)
    assert await store.use_refresh("h1") == record
    assert await store.use_refresh("h1") == RefreshRecord(**{**vars(record), "used": True})
    assert await store.use_refresh("unknown") is None


@pytest.mark.anyio
async def test_a_used_refresh_token_cannot_be_put_back(store: AuthStore) -> None:
    await store.put_refresh(refresh("h1"))
    await store.use_refresh("h1")
    with pytest.raises(RempartError) as caught:
        await store.put_refresh(refresh("h1"))
    assert caught.value.category is Category.CONFLICT
    again = await store.use_refresh("h1")
    assert again is not None and again.used


@pytest.mark.anyio
async def test_revoke_family_marks_every_token_of_the_family(store: AuthStore) -> None:
    for token_hash, family in (("a1", "A"), ("a2", "A"), ("b1", "B")):
        await store.put_refresh(refresh(token_hash, family))
    await store.revoke_family("A")
    used = [await store.use_refresh(token_hash) for token_hash in ("a1", "a2", "b1")]
    assert [record.used if record else None for record in used] == [True, True, False]


@pytest.mark.anyio
async def test_blocks_hold_until_they_expire_and_are_never_shortened(store: AuthStore) -> None:
    now = time.time()
    await store.block("jti:x", now + 60)
    await store.block("fam:y", now - 1)
    assert await store.blocked(["sub:z", "jti:x"], now) is True
    assert await store.blocked(["sub:z", "fam:y"], now) is False
    assert await store.blocked([], now) is False
    assert await store.blocked(["jti:x"], now + 61) is False
    await store.block("jti:x", now + 1)
    assert await store.blocked(["jti:x"], now + 30) is True
    await store.block("fam:y", now + 60)
    assert await store.blocked(["fam:y"], now) is True


@pytest.mark.anyio
async def test_purge_removes_expired_rows_only(store: AuthStore) -> None:
    for live, expires in ((True, soon()), (False, past())):
        await store.use_once(f"once-{live}", expires)
        await store.put_grant(f"grant-{live}", {"live": live}, expires)
        await store.put_refresh(RefreshRecord(f"r-{live}", "f", "c", "s", expires=expires))
        await store.block(f"block-{live}", expires)
    assert await store.purge(time.time()) == 4
    assert await store.purge(time.time()) == 0
    assert await store.peek_grant("grant-True") == {"live": True}
    assert await store.use_once("once-True", soon()) is False
    assert await store.use_refresh("r-False") is None
    assert await store.use_refresh("r-True") is not None
    assert await store.blocked(["block-True"], time.time()) is True


@pytest.mark.anyio
async def test_concurrent_use_once_accepts_exactly_one(store: AuthStore) -> None:
    results = await asyncio.gather(*(store.use_once("jti:race", soon()) for _ in range(RACERS)))
    assert results.count(True) == 1


@pytest.mark.anyio
async def test_concurrent_take_grant_returns_the_code_once(store: AuthStore) -> None:
    await store.put_grant("code:race", {"n": 1}, soon())
    results = await asyncio.gather(*(store.take_grant("code:race") for _ in range(RACERS)))
    assert results.count({"n": 1}) == 1 and results.count(None) == RACERS - 1


@pytest.mark.anyio
async def test_concurrent_use_refresh_rotates_once(store: AuthStore) -> None:
    await store.put_refresh(refresh("h-race"))
    results = await asyncio.gather(*(store.use_refresh("h-race") for _ in range(RACERS)))
    assert sorted(record.used for record in results if record) == [False] + [True] * (RACERS - 1)


@pytest.mark.anyio
async def test_two_stores_on_one_database_share_one_time_markers(opener: Opener) -> None:
    first, second = await opener(), await opener()
    try:
        racers = [(first, second)[n % 2].use_once("jti:shared", soon()) for n in range(RACERS)]
        assert (await asyncio.gather(*racers)).count(True) == 1
        await first.block("sub:s", soon())
        assert await first.blocked(["sub:s"], time.time()) is True
        # Another process sees it at its next lookup (SQLite: the file changed), or
        # when PostgreSQL delivers the notification (milliseconds).
        deadline = time.monotonic() + 2
        while not await second.blocked(["sub:s"], time.time()):
            assert time.monotonic() < deadline, "the block never reached the other store"
            await asyncio.sleep(0.005)
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_database_replay_cache_delegates_and_leaves_the_store_open(
    store: AuthStore,
) -> None:
    cache = DatabaseReplayCache(store)
    assert await cache.use_once("jti:c", soon()) is True
    assert await cache.use_once("jti:c", soon()) is False
    await cache.close()
    assert await store.use_once("jti:d", soon()) is True


def test_sqlite_stores_racing_from_threads_accept_a_key_once(tmp_path: Path) -> None:
    """Two stores on one file stand for two worker processes, each its own connections."""
    path = tmp_path / "auth.db"
    stores = [open_sqlite_auth(path), open_sqlite_auth(path)]
    start = threading.Barrier(RACERS)

    def race(n: int) -> bool:
        start.wait()
        return asyncio.run(stores[n % 2].use_once("jti:threads", soon()))

    try:
        with ThreadPoolExecutor(RACERS) as pool:
            results = list(pool.map(race, range(RACERS)))
    finally:
        for opened in stores:
            asyncio.run(opened.close())
    assert results.count(True) == 1


def test_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "auth.db"
    asyncio.run(open_sqlite_auth(path).close())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.anyio
async def test_postgres_workers_creating_tables_together_do_not_fail(
    pg_url: str, pg_schema: str
) -> None:
    stores = await asyncio.gather(*(open_postgres_auth(pg_url, pg_schema) for _ in range(4)))
    for opened in stores:
        await opened.close()


@pytest.mark.anyio
async def test_postgres_refuses_an_invalid_schema_name(pg_url: str) -> None:
    with pytest.raises(RempartError) as caught:
        await open_postgres_auth(pg_url, "x; DROP TABLE y")
    assert caught.value.category is Category.FAULT
