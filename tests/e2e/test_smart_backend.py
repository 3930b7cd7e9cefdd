"""SMART Backend Services against a running server: real key pairs, the real CLI, the
real token endpoint, and every check of a client assertion that SMART App Launch 2.2
(Backend Services) and RFC 7523 require of the server."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
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

from conftest import ServerProcess, bearer

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
