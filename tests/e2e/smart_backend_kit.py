"""Shared by the Backend Services tests: the client's keys, a server with the client
registered through the CLI, and assertion helpers."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import IN_CI, PG_URL, ServerProcess, _pg_available
from rempart.config import Settings, StorageSettings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT = "lab-system"
FHIR = {"content-type": "application/fhir+json"}


class Keys:
    """The client's key pairs: RS384 and ES384, as a JWKS of public keys."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.other = ec.generate_private_key(ec.SECP384R1())

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        ec_jwk = ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "alg": "RS384"},
                {**ec_jwk, "kid": "ec-1", "alg": "ES384"},
            ]
        }


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def _pg_schema() -> Iterator[str]:
    problem = _pg_available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    schema = f"rempart_test_{secrets.token_hex(6)}"
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: Keys
) -> Iterator[ServerProcess]:
    """A server with the client registered through ``rempart clients add``."""
    data = tmp_path_factory.mktemp("backend") / "data"
    schema_iter = _pg_schema() if request.param == "postgres" else None
    storage = StorageSettings(data_dir=data)
    if schema_iter is not None:
        storage = StorageSettings(
            data_dir=data, database_url=PG_URL, postgres_schema=next(schema_iter), pool_size=4
        )
    settings = Settings(storage=storage)
    env = {"REMPART_JWKS_ALLOW_PRIVATE": "1", "REMPART_JWKS_ALLOW_HTTP": "1"}
    server = ServerProcess(settings, env=env).start()
    jwks_file = data.parent / "jwks.json"
    jwks_file.write_text(json.dumps(keys.jwks()))
    cli(
        settings,
        "clients",
        "add",
        "--client-id",
        CLIENT,
        "--jwks-file",
        str(jwks_file),
        "--scope",
        "system/Patient.rs system/Observation.cruds",
    )
    try:
        yield server
    finally:
        server.stop()
        if schema_iter is not None:
            next(schema_iter, None)


def cli(settings: Settings, *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "rempart.cli", *args[:2]]
    command += ["--data-dir", str(settings.storage.data_dir)]
    if settings.storage.database_url:
        command += ["--database", settings.storage.database_url]
    env = {**os.environ, "REMPART_PG_SCHEMA": settings.storage.postgres_schema}
    done = subprocess.run(
        [*command, *args[2:]], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def token_url(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}/auth/token"


def assertion(
    server: ServerProcess,
    key: Any,
    kid: str | None = "ec-1",
    alg: str = "ES384",
    **overrides: Any,
) -> str:
    extra_headers = overrides.pop("_headers", {})
    now = int(time.time())
    claims = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": token_url(server),
        "exp": now + 240,
        "jti": secrets.token_hex(16),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": kid} if kid else {}
    headers.update(extra_headers)
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def ask(server: ServerProcess, signed: str, scope: str = "system/Patient.rs") -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    return httpx.post(token_url(server), data=form, timeout=10)


def refused(response: httpx.Response, error: str = "invalid_client") -> None:
    assert response.status_code == (401 if error == "invalid_client" else 400), response.text
    assert response.json() == {
        "error": error,
        "error_description": response.json()["error_description"],
    }
    # A generic text only: nothing about which check failed.
    assert response.json()["error_description"] in (
        "Client authentication failed",
        "The requested scope is not allowed",
        "The request is malformed",
        "Unsupported grant type",
    )
    assert response.headers["cache-control"] == "no-store"
