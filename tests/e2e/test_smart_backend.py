"""SMART Backend Services against a running server: real key pairs, the real CLI, the
real token endpoint, and every server-side SHALL that can be checked from outside
(SMART App Launch 2.2, Backend Services; RFC 7523; RFC 7009; RFC 6750)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import IN_CI, PG_URL, ServerProcess, _pg_available, bearer, mint_token
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


# --- the flow ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg, kid", [("ES384", "ec-1"), ("RS384", "rsa-1")])
def test_backend_services_flow(backend: ServerProcess, keys: Keys, alg: str, kid: str) -> None:
    key = keys.ec if alg == "ES384" else keys.rsa
    answer = ask(backend, assertion(backend, key, kid, alg), "system/Patient.rs")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["pragma"] == "no-cache"
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "system/Patient.rs"
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == backend.base
    assert claims["client_id"] == CLIENT and claims["sub"] == CLIENT
    assert claims["exp"] - claims["iat"] <= 300 and claims["jti"]
    # The token is signed by a key the server publishes.
    published = httpx.get(f"http://127.0.0.1:{backend.port}/auth/jwks").json()
    header = jwt.get_unverified_header(body["access_token"])
    jwk = next(k for k in published["keys"] if k["kid"] == header["kid"])
    jwt.decode(
        body["access_token"], jwt.PyJWK(jwk).key, algorithms=["ES256"], audience=backend.base
    )

    http = httpx.Client(base_url=backend.base, headers=bearer(body["access_token"]), timeout=10)
    with http:
        patient = {"resourceType": "Patient", "id": f"bs-{alg}", "active": True}
        admin = httpx.put(
            f"{backend.base}/Patient/bs-{alg}",
            content=json.dumps(patient),
            headers={**FHIR, **backend.headers},
            timeout=10,
        )
        assert admin.status_code in (200, 201)
        assert http.get(f"/Patient/bs-{alg}").status_code == 200
        assert http.get("/Patient", params={"_id": f"bs-{alg}"}).json()["total"] == 1
        # Read and search only: writing and other types are beyond the scope.
        write = http.put(f"/Patient/bs-{alg}", content=json.dumps(patient), headers=FHIR)
        assert write.status_code == 403
        assert 'error="insufficient_scope"' in write.headers["www-authenticate"]
        assert http.get("/Observation").status_code == 403


def test_scope_beyond_registration_is_refused(backend: ServerProcess, keys: Keys) -> None:
    refused(ask(backend, assertion(backend, keys.ec), "system/Patient.cruds"), "invalid_scope")
    refused(ask(backend, assertion(backend, keys.ec), "user/Patient.rs"), "invalid_scope")
    granted = ask(backend, assertion(backend, keys.ec), "system/Patient.rs system/Encounter.rs")
    assert granted.json()["scope"] == "system/Patient.rs"


# --- assertion checks (each SHALL) -------------------------------------------------------


def test_jti_is_never_accepted_twice(backend: ServerProcess, keys: Keys) -> None:
    signed = assertion(backend, keys.ec)
    assert ask(backend, signed).status_code == 200
    refused(ask(backend, signed))
    same_jti = assertion(backend, keys.ec, jti="fixed-" + secrets.token_hex(4))
    again = jwt.decode(same_jti, options={"verify_signature": False})["jti"]
    assert ask(backend, same_jti).status_code == 200
    refused(ask(backend, assertion(backend, keys.ec, jti=again)))


def test_assertion_expiring_more_than_five_minutes_ahead(
    backend: ServerProcess, keys: Keys
) -> None:
    refused(ask(backend, assertion(backend, keys.ec, exp=int(time.time()) + 600)))
    assert ask(backend, assertion(backend, keys.ec, exp=int(time.time()) + 290)).status_code == 200


def test_expired_or_timeless_assertion(backend: ServerProcess, keys: Keys) -> None:
    refused(ask(backend, assertion(backend, keys.ec, exp=int(time.time()) - 60)))
    refused(ask(backend, assertion(backend, keys.ec, exp=None)))
    refused(ask(backend, assertion(backend, keys.ec, jti=None)))


def test_wrong_audience_issuer_or_subject(backend: ServerProcess, keys: Keys) -> None:
    refused(ask(backend, assertion(backend, keys.ec, aud=backend.base)))
    refused(ask(backend, assertion(backend, keys.ec, aud="https://elsewhere.example/token")))
    refused(ask(backend, assertion(backend, keys.ec, sub="someone-else")))
    refused(ask(backend, assertion(backend, keys.ec, iss="unknown-client", sub="unknown-client")))


def test_alg_none_and_hs256_with_the_public_key(backend: ServerProcess, keys: Keys) -> None:
    claims = jwt.decode(assertion(backend, keys.ec), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "ec-1"})
    refused(ask(backend, unsigned))
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT itself refuses to HMAC with a PEM key: forge the token by hand.
    forged = _hs256(claims, public_pem, "rsa-1")
    refused(ask(backend, forged))


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps({**claims, "jti": secrets.token_hex(8)}).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


def test_unknown_kid_wrong_key_and_unregistered_jku(backend: ServerProcess, keys: Keys) -> None:
    refused(ask(backend, assertion(backend, keys.ec, kid="nope")))
    refused(ask(backend, assertion(backend, keys.ec, kid=None)))
    refused(ask(backend, assertion(backend, keys.other, kid="ec-1")))  # signature mismatch
    refused(ask(backend, assertion(backend, keys.rsa, kid="ec-1", alg="RS384")))  # kid/alg
    jku = assertion(backend, keys.ec, _headers={"jku": "https://attacker.example/jwks"})
    refused(ask(backend, jku))
    p256 = ec.generate_private_key(ec.SECP256R1())
    refused(ask(backend, assertion(backend, p256, kid="ec-1", alg="ES256")))


def test_other_client_assertion_types_and_grants(backend: ServerProcess, keys: Keys) -> None:
    form = {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
    refused(httpx.post(token_url(backend), data=form))
    bad_type = {**form, "client_assertion_type": "urn:x", "client_assertion": "a.b.c"}
    refused(httpx.post(token_url(backend), data=bad_type))
    refused(
        httpx.post(token_url(backend), data={"grant_type": "password"}), "unsupported_grant_type"
    )
    repeated = "grant_type=client_credentials&grant_type=client_credentials"
    plain = {"content-type": "application/x-www-form-urlencoded"}
    refused(httpx.post(token_url(backend), content=repeated, headers=plain), "invalid_request")
    refused(httpx.post(token_url(backend), json=form), "invalid_request")


# --- access tokens at the FHIR API ---------------------------------------------------------


def test_fhir_needs_a_valid_token(backend: ServerProcess) -> None:
    bare = httpx.get(f"{backend.base}/Patient", timeout=10)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="rempart"'
    assert bare.json()["resourceType"] == "OperationOutcome"
    for token in ("garbage-token-garbage", "a.b.c" * 5):
        answer = httpx.get(f"{backend.base}/Patient", headers=bearer(token), timeout=10)
        assert answer.status_code == 401
        assert (
            "invalid_token" in answer.headers["www-authenticate"]
            or "invalid_request" in (answer.headers["www-authenticate"])
        )
    assert httpx.get(f"{backend.base}/metadata", timeout=10).status_code == 200
    smart = httpx.get(f"{backend.base}/.well-known/smart-configuration", timeout=10)
    assert smart.status_code == 200
    assert smart.json()["token_endpoint"] == token_url(backend)
    assert smart.json()["code_challenge_methods_supported"] == ["S256"]
    assert httpx.get(f"http://127.0.0.1:{backend.port}/healthz").status_code == 200


def test_expired_and_foreign_audience_tokens(backend: ServerProcess) -> None:
    expired = mint_token(backend.settings, backend.base, lifetime=-30)
    answer = httpx.get(f"{backend.base}/Patient", headers=bearer(expired), timeout=10)
    assert answer.status_code == 401 and "invalid_token" in answer.headers["www-authenticate"]
    foreign = mint_token(backend.settings, "https://other.example/fhir")
    answer = httpx.get(f"{backend.base}/Patient", headers=bearer(foreign), timeout=10)
    assert answer.status_code == 401
    # Signed by a key the server does not know.
    stranger = jwt.encode(
        jwt.decode(mint_token(backend.settings, backend.base), options={"verify_signature": False}),
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={
            "kid": jwt.get_unverified_header(mint_token(backend.settings, backend.base))["kid"]
        },
    )
    assert httpx.get(f"{backend.base}/Patient", headers=bearer(stranger)).status_code == 401


def test_revoked_token_is_refused_at_once(backend: ServerProcess, keys: Keys) -> None:
    access = ask(backend, assertion(backend, keys.ec)).json()["access_token"]
    assert httpx.get(f"{backend.base}/Patient", headers=bearer(access)).status_code == 200
    revoke = {
        "token": access,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(backend, keys.ec),
    }
    origin = f"http://127.0.0.1:{backend.port}"
    assert httpx.post(f"{origin}/auth/revoke", data=revoke).status_code == 200
    assert httpx.get(f"{backend.base}/Patient", headers=bearer(access)).status_code == 401
    # Introspection by the owning client: inactive now.
    form = {
        "token": access,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(backend, keys.ec),
    }
    assert httpx.post(f"{origin}/auth/introspect", data=form).json() == {"active": False}


def test_introspection(backend: ServerProcess, keys: Keys) -> None:
    access = ask(backend, assertion(backend, keys.ec)).json()["access_token"]
    origin = f"http://127.0.0.1:{backend.port}"
    anonymous = httpx.post(f"{origin}/auth/introspect", data={"token": access})
    assert anonymous.status_code == 401
    introspector = bearer(mint_token(backend.settings, backend.base, "system/rempart.introspect"))
    seen = httpx.post(f"{origin}/auth/introspect", data={"token": access}, headers=introspector)
    body = seen.json()
    assert body["active"] is True and body["client_id"] == CLIENT
    assert body["scope"] == "system/Patient.rs" and body["exp"] > time.time()
    assert seen.headers["cache-control"] == "no-store"
    junk = httpx.post(f"{origin}/auth/introspect", data={"token": "x" * 40}, headers=introspector)
    assert junk.json() == {"active": False}


def test_disabled_client_tokens_stop_at_once(backend: ServerProcess, keys: Keys) -> None:
    other = Keys()
    jwks_file = backend.settings.storage.data_dir.parent / "jwks-temp.json"
    jwks_file.write_text(json.dumps(other.jwks()))
    name = f"temp-{secrets.token_hex(3)}"
    cli(
        backend.settings,
        "clients",
        "add",
        "--client-id",
        name,
        "--jwks-file",
        str(jwks_file),
        "--scope",
        "system/Patient.rs",
    )
    signed = assertion(backend, other.ec, iss=name, sub=name)
    access = ask(backend, signed).json()["access_token"]
    assert httpx.get(f"{backend.base}/Patient", headers=bearer(access)).status_code == 200
    admin = bearer(mint_token(backend.settings, backend.base, "system/rempart.admin"))
    origin = f"http://127.0.0.1:{backend.port}"
    assert httpx.delete(f"{origin}/admin/clients/{name}", headers=admin).status_code == 204
    assert httpx.get(f"{backend.base}/Patient", headers=bearer(access)).status_code == 401
    refused(ask(backend, assertion(backend, other.ec, iss=name, sub=name)))


# --- keys registered by URL ------------------------------------------------------------------


class JwksServer:
    """Serves a JWKS on loopback and counts the requests."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks, self.hits = jwks, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "max-age=300")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_keys_registered_by_url(backend: ServerProcess, keys: Keys) -> None:
    published = JwksServer(keys.jwks())
    name = f"by-url-{secrets.token_hex(3)}"
    try:
        cli(
            backend.settings,
            "clients",
            "add",
            "--client-id",
            name,
            "--jwks-url",
            published.url,
            "--scope",
            "system/Patient.rs",
        )
        for _ in range(3):
            signed = assertion(backend, keys.ec, iss=name, sub=name)
            assert ask(backend, signed).status_code == 200
        assert published.hits == 1  # cached per Cache-Control
        jku = assertion(backend, keys.ec, iss=name, sub=name, _headers={"jku": published.url})
        assert ask(backend, jku).status_code == 200
        other_jku = assertion(
            backend, keys.ec, iss=name, sub=name, _headers={"jku": published.url + "?x=1"}
        )
        refused(ask(backend, other_jku))
    finally:
        published.close()


def test_signing_key_rotation(backend: ServerProcess, keys: Keys, tmp_path: Path) -> None:
    before = ask(backend, assertion(backend, keys.ec)).json()["access_token"]
    rotated = cli(backend.settings, "keys", "rotate-signing")
    after = ask(backend, assertion(backend, keys.ec)).json()["access_token"]
    # The running server signs with the key it loaded; it verifies tokens of both keys.
    minted = mint_token(backend.settings, backend.base)
    assert jwt.get_unverified_header(minted)["kid"] == rotated["signing_key"]
    for token in (before, after, minted):
        assert httpx.get(f"{backend.base}/Patient", headers=bearer(token)).status_code == 200
    published = httpx.get(f"http://127.0.0.1:{backend.port}/auth/jwks").json()
    assert rotated["signing_key"] in {k["kid"] for k in published["keys"]}


def test_cli_key_and_token_commands(backend: ServerProcess, tmp_path: Path) -> None:
    """``rempart client-key`` then ``clients add`` then ``rempart token``: the README's way."""
    run = [sys.executable, "-m", "rempart.cli"]
    key_file = tmp_path / "client.pem"
    made = subprocess.run(
        [*run, "client-key", "--key-file", str(key_file), "--kid", "cli-1"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    jwks = json.loads(made.stdout)
    assert "d" not in jwks["keys"][0] and jwks["keys"][0]["kid"] == "cli-1"
    (tmp_path / "jwks.json").write_text(made.stdout)
    name = f"cli-{secrets.token_hex(3)}"
    cli(backend.settings, "clients", "add", "--client-id", name,
        "--jwks-file", str(tmp_path / "jwks.json"), "--scope", "system/Patient.rs")  # fmt: skip
    origin = f"http://127.0.0.1:{backend.port}"
    asked = [*run, "token", "--client-id", name, "--kid", "cli-1", "--key-file", str(key_file),
             "--url", origin]  # fmt: skip
    got = subprocess.run([*asked, "--scope", "system/Patient.rs"], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    token = got.stdout.strip()
    assert httpx.get(f"{backend.base}/Patient", headers=bearer(token)).status_code == 200
    beyond = subprocess.run([*asked, "--scope", "system/Patient.cruds"], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert beyond.returncode == 1 and "invalid_scope" in beyond.stderr


def test_cli_refuses_bad_registrations(backend: ServerProcess, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "rempart.cli", "clients", "add",
            "--data-dir", str(backend.settings.storage.data_dir)]  # fmt: skip
    if backend.settings.storage.database_url:
        base += ["--database", backend.settings.storage.database_url]
    env = {**os.environ, "REMPART_PG_SCHEMA": backend.settings.storage.postgres_schema}
    private = {"keys": [{"kty": "EC", "kid": "x", "crv": "P-384", "x": "a", "y": "b", "d": "c"}]}
    (tmp_path / "private.json").write_text(json.dumps(private))
    private_file, evil = str(tmp_path / "private.json"), "http://evil.example/cb"
    cases = [
        ["--client-id", "a b", "--scope", "system/*.rs", "--jwks-url", "https://x.example/j"],
        ["--client-id", "ok", "--scope", "", "--jwks-url", "https://x.example/j"],
        ["--client-id", "ok", "--scope", "system/*.rs"],  # no keys, not public
        ["--client-id", "ok", "--scope", "system/*.rs", "--jwks-file", private_file],
        ["--client-id", "ok", "--scope", "user/*.rs", "--public", "--redirect-uri", evil],
        ["--client-id", CLIENT, "--scope", "system/*.rs", "--jwks-url", "https://x.example/j"],
    ]  # fmt: skip
    for case in cases:
        done = subprocess.run([*base, *case], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (case, done.stdout)
        assert done.stderr.startswith("rempart: ") and "Traceback" not in done.stderr


# --- several processes ---------------------------------------------------------------------


def _redis_url() -> str:
    import redis

    url = os.environ.get("REMPART_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis unreachable under CI=true: {exc}")
        pytest.skip(f"Redis not reachable at {url}")
    return url


@pytest.mark.parametrize("shared", ["redis", "database"])
def test_jti_replay_is_refused_across_worker_processes(
    tmp_path: Path, keys: Keys, shared: str
) -> None:
    env = {"REMPART_REDIS_URL": _redis_url()} if shared == "redis" else {}
    settings = Settings(storage=StorageSettings(data_dir=tmp_path / "data"))
    server = ServerProcess(settings, workers=2, env=env).start()
    try:
        jwks_file = tmp_path / "jwks.json"
        jwks_file.write_text(json.dumps(keys.jwks()))
        cli(settings, "clients", "add", "--client-id", CLIENT, "--jwks-file", str(jwks_file),
            "--scope", "system/Patient.rs")  # fmt: skip
        signed = [assertion(server, keys.ec) for _ in range(12)]
        # Each assertion twice, on new connections: the two uses land on either worker.
        firsts = [ask(server, s).status_code for s in signed]
        seconds = [ask(server, s).status_code for s in signed]
        assert firsts == [200] * 12
        assert seconds == [401] * 12
        if shared == "redis":
            import redis

            with redis.Redis.from_url(env["REMPART_REDIS_URL"]) as client:
                jtis = {jwt.decode(s, options={"verify_signature": False})["jti"] for s in signed}
                stored = {k.decode().rsplit(":", 1)[1] for k in client.scan_iter("rempart:once:*")}
                assert jtis <= stored  # remembered in Redis, shared by both workers
    finally:
        server.stop()
