"""Access tokens at the FHIR API from Backend Services clients: bad, expired, foreign,
revoked tokens, introspection (RFC 7662), revocation (RFC 7009), disabled clients,
keys registered by URL, signing-key rotation, the CLI, and several processes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from smart_backend_kit import (  # noqa: F401 - fixtures are found by name
    ASSERTION_TYPE,
    CLIENT,
    FHIR,
    Keys,
    ask,
    assertion,
    backend,
    cli,
    keys,
    refused,
    token_url,
)

from conftest import ServerProcess, bearer, mint_token
from rempart.config import Settings, StorageSettings

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


@pytest.mark.parametrize("shared", ["redis", "database"])
def test_jti_replay_is_refused_across_worker_processes(
    tmp_path: Path, keys: Keys, shared: str, request: pytest.FixtureRequest
) -> None:
    shared_url = request.getfixturevalue("redis_url") if shared == "redis" else None
    env = {"REMPART_REDIS_URL": shared_url} if shared_url else {}
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
