"""Rate limits end to end: an in-process app where token verifications are counted,
and real server processes sharing a real Redis.

Every loopback request comes from 127.0.0.1; the well-behaved client of the flood
test binds 127.0.0.2 (loopback too on Linux), a different address to the server.
Under ``CI=true`` an unreachable Redis fails the run; elsewhere those tests skip.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from conftest import IN_CI, ServerProcess, bearer, free_port, mint_token
from rempart.config import RateLimitSettings, Settings, StorageSettings
from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.tokens import Grant, Tokens

if TYPE_CHECKING:
    from httpx2 import Response as InProcessResponse  # what Starlette's TestClient answers

BASE = "http://127.0.0.1/fhir"
GARBAGE = {"authorization": "Bearer " + "x" * 40 + "." + "y" * 40 + "." + "z" * 40}
PATIENT = b'{"resourceType": "Patient", "id": "p1", "active": true}'


def sqlite(tmp_path: Path, **limits: Any) -> Settings:
    return Settings(
        storage=StorageSettings(data_dir=tmp_path / "data"),
        ratelimit=RateLimitSettings(**limits),
    )


def limited_env(redis_url: str, prefix: str, **limits: int) -> dict[str, str]:
    env = {
        "REMPART_RATELIMIT_ENABLED": "1",
        "REMPART_REDIS_URL": redis_url,
        "REMPART_RATELIMIT_PREFIX": prefix,
    }
    env.update({f"REMPART_RATELIMIT_{k.upper()}": str(v) for k, v in limits.items()})
    return env


def budget_after(limit: int, started: float) -> int:
    """The most a budget may let through since ``started``: a sliding window counter
    lets the previous minute's hits fade out, so a run crossing a minute boundary may
    see a few more than ``limit``."""
    return limit + int(limit * (time.monotonic() - started) / 60) + 1


def assert_throttled(answer: httpx.Response | InProcessResponse, limit: int) -> None:
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["ratelimit-reset"] == answer.headers["retry-after"]
    assert answer.headers["ratelimit-limit"] == str(limit)
    assert answer.headers["ratelimit-remaining"] == "0"
    assert answer.headers["x-request-id"]
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"


# --- In process: the per-address limit comes before token verification -----------


def test_bad_tokens_are_cut_before_they_cost_a_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rempart.web import create_app

    verifications = Counter[str]()
    verify = Tokens.verify

    async def counted(self: Tokens, token: str, issuer: str, audience: str) -> object:
        verifications["calls"] += 1
        return await verify(self, token, issuer, audience)

    monkeypatch.setattr(Tokens, "verify", counted)
    app = create_app(sqlite(tmp_path, ip_per_minute=50))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        started = time.monotonic()
        answers = [client.get("/fhir/Patient/p1", headers=GARBAGE) for _ in range(400)]
    codes = Counter(a.status_code for a in answers)
    assert set(codes) == {401, 429}
    assert 50 <= codes[401] <= budget_after(50, started)
    assert verifications["calls"] == codes[401]  # a 429 never reached verification
    assert_throttled(answers[-1], 50)


def user_token(settings: Settings, user: str) -> str:
    keys = SigningKeys(settings.storage.data_dir / "keys" / "signing-keys.json")
    grant = Grant("test-suite", user, True, ("user/*.cruds",))
    return Tokens(keys, None, 3600).issue(grant, BASE, BASE, None)  # type: ignore[arg-type]


def test_costs_are_weighted_per_client_and_per_user(tmp_path: Path) -> None:
    from rempart.web import create_app

    settings = sqlite(tmp_path, client_per_minute=20, user_per_minute=20)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers.update(bearer(mint_token(settings, BASE)))
        reads = [client.get("/fhir/Patient/p1").status_code for _ in range(20)]
        assert set(reads) == {404}
        assert_throttled(client.get("/fhir/Patient/p1"), 20)
        # A user of the same app has a budget of their own: 4 searches spend it.
        client.headers.update(bearer(user_token(settings, "alice")))
        searches = [client.get("/fhir/Patient").status_code for _ in range(4)]
        assert searches == [200] * 4
        assert client.get("/fhir/Patient/p1").status_code == 429


# --- Real servers, real Redis --------------------------------------------------------


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys (and only they) deleted afterwards."""
    name = f"rempart-test-{secrets.token_hex(6)}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(match=f"{name}:*"):
            client.delete(key)


def test_a_flood_of_bad_tokens_is_cut_while_another_client_is_served(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    env = limited_env(redis_url, prefix, ip_per_minute=300)
    server = ServerProcess(sqlite(tmp_path), env=env).start()
    good = httpx.Client(
        base_url=server.base + "/",
        headers=server.headers,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
    )
    flood_done = threading.Event()
    try:
        assert good.put("Patient/p1", content=PATIENT).status_code == 201
        served: list[int] = []

        def well_behaved() -> None:
            while not flood_done.is_set():
                served.append(good.get("Patient/p1").status_code)
                time.sleep(0.02)

        limits = httpx.Limits(max_connections=16)
        with httpx.Client(headers=GARBAGE, limits=limits) as bad, ThreadPoolExecutor(17) as pool:
            watcher = pool.submit(well_behaved)
            url = f"{server.base}/Patient/p1"
            started = time.monotonic()
            answers = list(pool.map(lambda _: bad.get(url), range(3000)))
            flood_done.set()
            watcher.result()
    finally:
        good.close()
        server.stop()
    codes = Counter(a.status_code for a in answers)
    assert set(codes) == {401, 429}
    # Only a 401 went through verification: no more than the address's budget did.
    assert codes[401] <= budget_after(300, started) and codes[429] >= 2600
    assert_throttled(answers[-1], 300)
    assert len(served) >= 10 and set(served) == {200}


def test_a_client_budget_holds_across_two_server_processes(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    env = limited_env(redis_url, prefix, client_per_minute=30)
    settings = sqlite(tmp_path)
    first = ServerProcess(settings, env=env).start()
    second = ServerProcess(settings, env=env).start()
    try:
        servers = [(f"{s.base}/Patient/p1", s.headers) for s in (first, second)]
        with httpx.Client() as http:
            started = time.monotonic()
            codes = [http.get(url, headers=h).status_code for _ in range(30) for url, h in servers]
    finally:
        first.stop()
        second.stop()
    assert set(codes) == {404, 429}
    assert 30 <= codes.count(404) <= budget_after(30, started)  # not 60: one budget
    assert codes[:30] == [404] * 30  # alternating between both servers until spent


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, which the test may kill."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server not installed under CI=true")
        pytest.skip("redis-server not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url, process
    finally:
        process.kill()
        process.wait(10)


def test_when_redis_dies_credentials_fail_closed_and_the_api_stays_open(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, redis_process = own_redis
    server = ServerProcess(sqlite(tmp_path), env=limited_env(url, "rempart")).start()
    token_url = f"http://127.0.0.1:{server.port}/auth/token"
    try:
        with httpx.Client(headers=server.headers) as http:
            assert http.post(token_url, data={}).status_code == 400  # limited, then refused
            redis_process.kill()
            redis_process.wait(10)
            refused = http.post(token_url, data={})
            read = http.get(f"{server.base}/Patient/p1")
    finally:
        server.stop()
    assert refused.status_code == 503
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert read.status_code == 404  # served, unlimited
    assert "rate limits not applied" in server.log.read_text()


def test_a_server_does_not_start_without_its_redis(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RuntimeError, match="rate limit store is unavailable"):
        ServerProcess(sqlite(tmp_path), env=limited_env(dead, "rempart")).start()
