"""Shared fixtures: settings per backend, in-process app, real server processes.

PostgreSQL tests run against a real server. Under ``CI=true`` an unreachable
server fails the run; elsewhere those tests are skipped with a clear reason.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from starlette.testclient import TestClient

from rempart.config import RateLimitSettings, Settings, StorageSettings
from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.tokens import Grant, Tokens

REDIS_URL = os.environ.get("REMPART_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_URL = os.environ.get("REMPART_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-r4" / "examples"


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis (database 15). Under ``CI=true`` an unreachable one fails the run."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis unreachable under CI=true: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_url() -> str:
    problem = _pg_available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    schema = f"rempart_test_{secrets.token_hex(6)}"
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema}_audit CASCADE")  # the audit store's


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a fresh store, once per backend (rate limits off, as for servers)."""
    unlimited = RateLimitSettings(enabled=False)
    if request.param == "sqlite":
        return Settings(storage=StorageSettings(data_dir=tmp_path / "data"), ratelimit=unlimited)
    schema = request.getfixturevalue("pg_schema")
    url = request.getfixturevalue("pg_url")
    return Settings(
        storage=StorageSettings(
            data_dir=tmp_path / "data", database_url=url, postgres_schema=schema, pool_size=4
        ),
        ratelimit=unlimited,
    )


def mint_token(
    settings: Settings, base: str, scopes: str = "system/*.cruds", lifetime: int = 3600
) -> str:
    """An access token signed with the server's own key, as the authorization server
    would issue it to a backend client with ``scopes``. Longer-lived than real ones
    (the suite outlasts five minutes); tests of the token flows get theirs the real way."""
    keys = SigningKeys(settings.storage.data_dir / "keys" / "signing-keys.json")
    grant = Grant("test-suite", "test-suite", False, tuple(scopes.split()))
    return Tokens(keys, None, lifetime).issue(grant, base, base, None)  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real ASGI application, in process, with its lifespan run, calling with a
    ``system/*.cruds`` token."""
    from rempart.web import create_app

    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        token = mint_token(settings, "http://127.0.0.1/fhir")
        test_client.headers.update(bearer(token))
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A real ``rempart serve`` process on loopback."""

    settings: Settings
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path = Path("/dev/null")
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def headers(self) -> dict[str, str]:
        """Authorization for a ``system/*.cruds`` backend client of this server."""
        return bearer(mint_token(self.settings, self.base))

    def start(self) -> ServerProcess:
        self.port = free_port()
        env = {
            **os.environ,
            "REMPART_PG_SCHEMA": self.settings.storage.postgres_schema,
            # Every test talks from 127.0.0.1: rate limits are off unless a test
            # (tests/e2e/test_ratelimit.py) turns them on through env.
            "REMPART_RATELIMIT_ENABLED": "0",
            **self.env,
        }
        cmd = [
            sys.executable,
            "-m",
            "rempart.cli",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.settings.storage.data_dir),
            "--workers",
            str(self.workers),
        ]
        if self.settings.storage.database_url:
            cmd += ["--database", self.settings.storage.database_url]
        cmd += self.extra_args
        self.log = self.settings.storage.data_dir.parent / f"server-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        scheme = "https" if "--tls-cert" in self.extra_args else "http"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                url = f"{scheme}://127.0.0.1:{self.port}/healthz"
                if httpx.get(url, timeout=1, verify=False).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start within 30 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerProcess]:
    """A running server process on the parametrized backend."""
    process = ServerProcess(settings).start()
    try:
        yield process
    finally:
        process.stop()
