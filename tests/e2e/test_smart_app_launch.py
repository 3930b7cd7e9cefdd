"""SMART App Launch 2.2 end to end, over HTTP against a real ``rempart serve`` process:
discovery, the authorization-code flow of a public client (PKCE S256, login with
password and TOTP, consent), refresh-token rotation, the login defence, revocation
(RFC 7009), introspection (RFC 7662) and the admin API.

Accounts and clients are made with the real CLI. A TOTP step is never accepted twice,
so each test user logs in once: no test waits for the clock. The core flow runs on
SQLite and PostgreSQL; the rest on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import orjson
import psycopg
import pytest
from smart_flow import (
    FHIR_JSON,
    PATIENT_SCOPES,
    Flow,
    Smart,
    User,
    alert,
    hidden_tx,
    query,
    read_patient,
    refresh,
    today_plus,
)

from conftest import ServerProcess, bearer
from rempart.config import Settings, StorageSettings
from rempart.storage.open_audit import open_audit_store

PATIENT_ID = "smart-pat-1"
APP = "smart-app"
OTHER_APP = "other-app"
REDIRECT = "http://127.0.0.1:8765/callback"
OTHER_REDIRECT = "http://127.0.0.1:8766/back"
LOGIN_FAILED = "Invalid credentials, or too many attempts: try again later."
STALE_FORM = "Ce formulaire n'est plus valide. Recommencez depuis l'application."
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def _prepared(settings: Settings) -> Iterator[Smart]:
    """A server with two public apps and one patient, stopped afterwards."""
    server = ServerProcess(settings).start()
    try:
        smart = Smart(server)
        smart.add_public_client(APP, REDIRECT, f"{PATIENT_SCOPES} online_access")
        smart.add_public_client(OTHER_APP, OTHER_REDIRECT, PATIENT_SCOPES)
        smart.create_patient(PATIENT_ID)
        yield smart
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sqlite_smart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smart]:
    data = tmp_path_factory.mktemp("smart-sqlite") / "data"
    yield from _prepared(Settings(storage=StorageSettings(data_dir=data)))


@pytest.fixture(scope="module")
def postgres_smart(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smart]:
    schema = f"rempart_test_{secrets.token_hex(6)}"
    data = tmp_path_factory.mktemp("smart-postgres") / "data"
    storage = StorageSettings(
        data_dir=data, database_url=pg_url, postgres_schema=schema, pool_size=4
    )
    try:
        yield from _prepared(Settings(storage=storage))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def any_smart(request: pytest.FixtureRequest) -> Smart:
    smart: Smart = request.getfixturevalue(f"{request.param}_smart")
    return smart


@pytest.fixture
def smart(sqlite_smart: Smart) -> Smart:
    return sqlite_smart


@pytest.fixture
def flow(smart: Smart) -> Iterator[Flow]:
    browser = Flow(smart, APP, REDIRECT)
    yield browser
    browser.close()


def audit_events(smart: Smart) -> list[dict[str, Any]]:
    """What the server's audit store holds (read beside the running server)."""

    async def read() -> list[dict[str, Any]]:
        store = await open_audit_store(smart.server.settings, None, create=False)
        try:
            return [orjson.loads(record.body) async for record in store.records()]
        finally:
            await store.close()

    return asyncio.run(read())


def patient_user(smart: Smart, name: str) -> User:
    """A fresh account of the patient ``PATIENT_ID`` (one login each: see the docstring)."""
    return smart.add_user(f"{name}-{secrets.token_hex(3)}", fhir_user=f"Patient/{PATIENT_ID}")


def error_of(answer: httpx.Response) -> str:
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, str] = answer.json()
    return body["error"]


def claims(smart: Smart, token: str, audience: str) -> dict[str, Any]:
    """The token's claims, its ES256 signature checked with the server's published JWKS."""
    jwks = httpx.get(smart.auth("jwks")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    decoded: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["ES256"], audience=audience, issuer=smart.base
    )
    return decoded


# 1. Discovery ---------------------------------------------------------------------


def test_smart_configuration_is_public_and_complete(any_smart: Smart) -> None:
    answer = httpx.get(f"{any_smart.base}/.well-known/smart-configuration")
    assert answer.status_code == 200
    config = answer.json()
    required = {
        "issuer", "jwks_uri", "authorization_endpoint", "token_endpoint",
        "grant_types_supported", "token_endpoint_auth_methods_supported",
        "scopes_supported", "response_types_supported", "capabilities",
        "code_challenge_methods_supported",
    }  # fmt: skip
    assert required <= config.keys()
    assert config["issuer"] == any_smart.base
    assert config["authorization_endpoint"] == any_smart.auth("authorize")
    assert config["token_endpoint"] == any_smart.auth("token")
    assert config["jwks_uri"] == any_smart.auth("jwks")
    assert config["introspection_endpoint"] == any_smart.auth("introspect")
    assert config["revocation_endpoint"] == any_smart.auth("revoke")
    assert "S256" in config["code_challenge_methods_supported"]
    assert "plain" not in config["code_challenge_methods_supported"]
    assert {"authorization_code", "refresh_token"} <= set(config["grant_types_supported"])
    assert config["response_types_supported"] == ["code"]
    assert {"launch-standalone", "client-public", "permission-offline"} <= set(
        config["capabilities"]
    )
    assert httpx.get(config["jwks_uri"]).json()["keys"][0]["alg"] == "ES256"


def test_metadata_is_public_and_names_the_oauth_endpoints(smart: Smart) -> None:
    answer = httpx.get(f"{smart.base}/metadata")
    assert answer.status_code == 200
    security = answer.json()["rest"][0]["security"]
    uris = {
        e["url"]: e["valueUri"]
        for ext in security["extension"]
        if ext["url"].endswith("/StructureDefinition/oauth-uris")
        for e in ext["extension"]
    }
    assert uris["authorize"] == smart.auth("authorize")
    assert uris["token"] == smart.auth("token")


def test_fhir_without_token_is_challenged(smart: Smart) -> None:
    answer = httpx.get(f"{smart.base}/Patient")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="rempart"'
    assert answer.json()["resourceType"] == "OperationOutcome"


# 2. The authorization-code flow ---------------------------------------------------


def test_authorization_code_flow_of_a_public_client(any_smart: Smart) -> None:
    user = patient_user(any_smart, "alice")
    browser = Flow(any_smart, APP, REDIRECT)
    try:
        login = browser.authorize()
        assert login.status_code == 200
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        assert 'action="/auth/login"' in login.text
        consent = browser.post_login(hidden_tx(login.text), user)
        assert consent.status_code == 200
        assert 'name="approve"' in consent.text
        assert "<code>patient/*.rs</code>" in consent.text
        approved = browser.browser.post(
            any_smart.auth("consent"), data={"tx": hidden_tx(consent.text), "approve": "1"}
        )
    finally:
        browser.close()
    assert approved.status_code == 303
    back = query(approved.headers["location"])
    assert back.keys() == {"code", "state", "iss"}
    assert (back["state"], back["iss"]) == (browser.state, any_smart.base)
    answer = browser.exchange(back["code"])
    assert answer.status_code == 200, answer.text
    assert {k: answer.headers[k] for k in NO_STORE} == NO_STORE
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 300
    assert tokens["patient"] == PATIENT_ID
    assert set(tokens["scope"].split()) == set(PATIENT_SCOPES.split())
    assert tokens["refresh_token"]
    _check_id_token(any_smart, tokens["id_token"], user, browser.state)
    _check_access_token(any_smart, tokens["access_token"], user)


def _check_id_token(smart: Smart, id_token: str, user: User, state: str) -> None:
    identity = claims(smart, id_token, APP)
    assert identity["aud"] == APP
    assert identity["sub"] == user.username
    assert identity["fhirUser"].endswith(f"/Patient/{PATIENT_ID}")
    assert identity["nonce"] == "n-" + state


def _check_access_token(smart: Smart, access_token: str, user: User) -> None:
    access = claims(smart, access_token, smart.base)
    assert access["aud"] == smart.base
    assert 0 < access["exp"] - access["iat"] <= 300
    assert access["client_id"] == APP
    assert access["sub"] == user.username
    assert set(access["scope"].split()) == set(PATIENT_SCOPES.split())
    assert len(access["jti"]) >= 16
    own = read_patient(smart, PATIENT_ID, access_token)
    assert own.status_code == 200
    assert own.json()["id"] == PATIENT_ID
    # A patient token reaches its own compartment only: another patient is "not found",
    # searches return the patient's own records, writes are beyond its scopes.
    assert (
        httpx.get(f"{smart.base}/Patient/someone-else", headers=bearer(access_token)).status_code
        == 404
    )
    patients = httpx.get(f"{smart.base}/Patient", headers=bearer(access_token)).json()
    assert [e["resource"]["id"] for e in patients.get("entry", [])] == [PATIENT_ID]
    write = httpx.delete(f"{smart.base}/Patient/{PATIENT_ID}", headers=bearer(access_token))
    assert write.status_code == 403
    assert 'error="insufficient_scope"' in write.headers["www-authenticate"]


def test_denied_consent_sends_access_denied(smart: Smart, flow: Flow) -> None:
    consent = flow.login(patient_user(smart, "dan"))
    denied = flow.browser.post(
        smart.auth("consent"), data={"tx": hidden_tx(consent.text), "deny": "1"}
    )
    assert denied.status_code == 303
    back = query(denied.headers["location"])
    assert back == {"error": "access_denied", "state": flow.state, "iss": smart.base}
    # The decision ends the request: approving it afterwards gets no code.
    again = flow.browser.post(
        smart.auth("consent"), data={"tx": hidden_tx(consent.text), "approve": "1"}
    )
    assert again.status_code == 400
    assert "location" not in again.headers


def test_consent_without_the_browser_cookie_is_refused(smart: Smart, flow: Flow) -> None:
    consent = flow.login(patient_user(smart, "dora"))
    tx = hidden_tx(consent.text)
    forged = httpx.post(smart.auth("consent"), data={"tx": tx, "approve": "1"})
    assert forged.status_code == 400
    assert "location" not in forged.headers
    assert alert(forged.text) == STALE_FORM
    approved = flow.browser.post(smart.auth("consent"), data={"tx": tx, "approve": "1"})
    assert approved.status_code == 303
    assert "code" in query(approved.headers["location"])


# 3. PKCE, redirect URIs, codes ----------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"code_challenge": None},
        {"code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"aud": "http://127.0.0.1:1/fhir"},
    ],
    ids=["no-challenge", "no-method", "plain", "wrong-aud"],
)
def test_bad_authorization_request_goes_back_with_invalid_request(
    smart: Smart, flow: Flow, changes: dict[str, str | None]
) -> None:
    if changes.get("code_challenge_method") == "plain":
        changes = {**changes, "code_challenge": flow.verifier[:43]}
    answer = flow.authorize(**changes)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(REDIRECT + "?")
    back = query(answer.headers["location"])
    assert back == {"error": "invalid_request", "state": flow.state, "iss": smart.base}


@pytest.mark.parametrize(
    "changes",
    [
        {"redirect_uri": REDIRECT + "/elsewhere"},
        {"redirect_uri": OTHER_REDIRECT},
        {"redirect_uri": None},
        {"client_id": "no-such-app"},
    ],
    ids=["longer-uri", "other-clients-uri", "no-uri", "unknown-client"],
)
def test_untrusted_redirect_shows_an_error_page(flow: Flow, changes: dict[str, str | None]) -> None:
    answer = flow.authorize(**changes)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert alert(answer.text) in {
        "Unknown client.",
        "This redirect URI is not registered for the client.",
    }
    assert "rempart_login" not in answer.cookies


@pytest.mark.parametrize(
    "changes",
    [
        {"code_verifier": "x" * 43},
        {"code_verifier": None},
        {"redirect_uri": REDIRECT + "/elsewhere"},
        {"client_id": OTHER_APP},
    ],
    ids=["wrong-verifier", "no-verifier", "other-redirect-uri", "other-client"],
)
def test_code_exchange_refused_then_the_code_is_spent(
    smart: Smart, flow: Flow, changes: dict[str, str | None]
) -> None:
    code = flow.code(patient_user(smart, "bob"))
    refused = flow.exchange(code, **changes)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "The grant is invalid, expired or revoked",
    }
    assert {k: refused.headers[k] for k in NO_STORE} == NO_STORE
    # A code is tried once: even the right request fails now.
    assert error_of(flow.exchange(code)) == "invalid_grant"


def test_code_is_used_once(smart: Smart, flow: Flow) -> None:
    code = flow.code(patient_user(smart, "carol"))
    first = flow.exchange(code)
    assert first.status_code == 200
    second = flow.exchange(code)
    assert second.status_code == 400
    assert error_of(second) == "invalid_grant"
    # A code that comes back was intercepted: what it issued is revoked (RFC 6749 §4.1.2).
    revoked = read_patient(smart, PATIENT_ID, first.json()["access_token"])
    assert revoked.status_code == 401
    assert error_of(refresh(smart, first.json()["refresh_token"], APP)) == "invalid_grant"


# 4. Refresh tokens ----------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(smart: Smart, flow: Flow) -> None:
    first = flow.tokens(patient_user(smart, "erin"))
    second = refresh(smart, first["refresh_token"], APP)
    assert second.status_code == 200
    assert {k: second.headers[k] for k in NO_STORE} == NO_STORE
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["patient"] == PATIENT_ID
    third = refresh(smart, rotated["refresh_token"], APP).json()
    assert read_patient(smart, PATIENT_ID, third["access_token"]).status_code == 200
    # The first token comes back after rotation: stolen, so the whole family goes.
    reused = refresh(smart, first["refresh_token"], APP)
    assert reused.status_code == 400
    assert error_of(reused) == "invalid_grant"
    assert error_of(refresh(smart, third["refresh_token"], APP)) == "invalid_grant"
    for token in (first["access_token"], third["access_token"]):
        refused = read_patient(smart, PATIENT_ID, token)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_refresh_token_is_bound_to_its_client(smart: Smart, flow: Flow) -> None:
    tokens = flow.tokens(patient_user(smart, "frank"))
    stolen = refresh(smart, tokens["refresh_token"], OTHER_APP)
    assert stolen.status_code == 400
    assert error_of(stolen) == "invalid_grant"
    assert "access_token" not in stolen.json()
    # Another client held it: it leaked, so the family is revoked for its owner too.
    assert read_patient(smart, PATIENT_ID, tokens["access_token"]).status_code == 401
    assert error_of(refresh(smart, tokens["refresh_token"], APP)) == "invalid_grant"


def test_refresh_of_an_unknown_client_or_token(smart: Smart) -> None:
    unknown_client = refresh(smart, "a" * 43, "no-such-app")
    assert unknown_client.status_code == 401
    assert error_of(unknown_client) == "invalid_client"
    assert unknown_client.headers["www-authenticate"].startswith("Bearer")
    assert error_of(refresh(smart, "a" * 43, APP)) == "invalid_grant"


# 5. Login defence -----------------------------------------------------------------


def test_wrong_totp_shows_the_form_again_with_a_generic_error(smart: Smart, flow: Flow) -> None:
    user = patient_user(smart, "gina")
    right = user.totp()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    again = flow.login(user, totp=wrong)
    assert again.status_code == 401
    assert alert(again.text) == LOGIN_FAILED
    assert 'action="/auth/login"' in again.text
    assert 'name="approve"' not in again.text
    # Same answer for an unknown user: the page does not say which factor failed.
    stranger = flow.post_login(hidden_tx(again.text), User("nobody-here", "x" * 16, "A" * 32))
    assert (stranger.status_code, alert(stranger.text)) == (401, LOGIN_FAILED)


def test_account_locks_after_five_failures(smart: Smart, flow: Flow) -> None:
    user = patient_user(smart, "hank")
    tx = hidden_tx(flow.authorize().text)
    wrong = User(user.username, user.password + "!", user.totp_secret)
    for _ in range(5):
        failed = flow.post_login(tx, wrong, totp="000000")
        assert (failed.status_code, alert(failed.text)) == (401, LOGIN_FAILED)
    locked = flow.post_login(tx, user)
    assert locked.status_code == 401
    assert alert(locked.text) == LOGIN_FAILED
    assert 'name="approve"' not in locked.text
    # each attempt is in the audit trail, with the user name typed and the reason
    logins = [e for e in audit_events(smart) if e["subtype"][0]["code"] == "login"]
    mine = [e for e in logins if e["agent"][-1]["who"]["identifier"]["value"] == user.username]
    assert [e["outcome"] for e in mine] == ["4"] * 6
    assert all("login refused" in e["outcomeDesc"] for e in mine)
    assert all(user.password.encode() not in orjson.dumps(e) for e in mine)


def test_account_past_its_end_date_cannot_log_in(smart: Smart, flow: Flow) -> None:
    user = smart.add_user(
        f"ivy-{secrets.token_hex(3)}", f"Patient/{PATIENT_ID}", end_date=today_plus(-1)
    )
    refused = flow.login(user)
    assert refused.status_code == 401
    assert alert(refused.text) == LOGIN_FAILED


def test_login_form_without_the_browser_cookie_is_refused(smart: Smart, flow: Flow) -> None:
    user = patient_user(smart, "jack")
    tx = hidden_tx(flow.authorize().text)
    form = {"tx": tx, "username": user.username, "password": user.password, "totp": user.totp()}
    answer = httpx.post(smart.auth("login"), data=form)
    assert answer.status_code == 400
    assert alert(answer.text) == STALE_FORM
    # Nothing was checked: the same code still logs in from the browser that began.
    assert flow.post_login(tx, user, totp=form["totp"]).status_code == 200


# 6. Revocation and introspection --------------------------------------------------


def test_revocation_and_introspection(smart: Smart, flow: Flow) -> None:
    user = patient_user(smart, "kate")
    tokens = flow.tokens(user)
    access = tokens["access_token"]
    introspector = smart.token_for("system/rempart.introspect")
    described = _introspect(smart, access, introspector)
    assert described["active"] is True
    assert described["client_id"] == APP
    assert described["sub"] == user.username
    assert set(described["scope"].split()) == set(PATIENT_SCOPES.split())
    assert described["exp"] == claims(smart, access, smart.base)["exp"]
    # Another client's revocation is ignored (RFC 7009 §2.2): the token still works.
    foreign = httpx.post(smart.auth("revoke"), data={"token": access, "client_id": OTHER_APP})
    assert foreign.status_code == 200
    assert read_patient(smart, PATIENT_ID, access).status_code == 200
    revoked = httpx.post(smart.auth("revoke"), data={"token": access, "client_id": APP})
    assert revoked.status_code == 200
    assert revoked.content == b""
    assert read_patient(smart, PATIENT_ID, access).status_code == 401
    assert _introspect(smart, access, introspector) == {"active": False}


def test_introspection_needs_an_authenticated_caller(smart: Smart) -> None:
    token = smart.token_for("system/*.cruds")
    form = {"token": token, "client_id": APP}
    anonymous = httpx.post(smart.auth("introspect"), data=form)
    assert anonymous.status_code == 401
    assert error_of(anonymous) == "invalid_client"
    no_scope = httpx.post(smart.auth("introspect"), data=form, headers=bearer(token))
    assert no_scope.status_code == 401


def _introspect(smart: Smart, token: str, caller: dict[str, str]) -> dict[str, Any]:
    answer = httpx.post(smart.auth("introspect"), data={"token": token}, headers=caller)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    described: dict[str, Any] = answer.json()
    return described


# 7. Admin API ---------------------------------------------------------------------


def test_admin_api_needs_the_admin_scope(smart: Smart) -> None:
    anonymous = httpx.get(f"{smart.origin}/admin/users")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="rempart"'
    backend = httpx.get(f"{smart.origin}/admin/users", headers=smart.server.headers)
    assert backend.status_code == 403
    assert backend.headers["www-authenticate"] == (
        'Bearer realm="rempart", error="insufficient_scope", scope="system/rempart.admin"'
    )
    assert backend.json()["resourceType"] == "OperationOutcome"


def test_admin_creates_a_user_and_disabling_it_stops_its_tokens(smart: Smart, flow: Flow) -> None:
    admin = smart.token_for("system/rempart.admin")
    body = {"username": f"lena-{secrets.token_hex(3)}", "password": "admin made 2024 pw",
            "fhir_user": f"Patient/{PATIENT_ID}"}  # fmt: skip
    created = httpx.post(f"{smart.origin}/admin/users", content=json.dumps(body), headers=admin)
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["username"] == body["username"]
    assert account["disabled"] is False
    assert len(account["totp_secret"]) == 32
    assert "password" not in account
    user = User(body["username"], body["password"], account["totp_secret"])
    tokens = flow.tokens(user)
    assert read_patient(smart, PATIENT_ID, tokens["access_token"]).status_code == 200
    deleted = httpx.delete(f"{smart.origin}/admin/users/{user.username}", headers=admin)
    assert deleted.status_code == 204
    assert read_patient(smart, PATIENT_ID, tokens["access_token"]).status_code == 401
    assert error_of(refresh(smart, tokens["refresh_token"], APP)) == "invalid_grant"
    shown = httpx.get(f"{smart.origin}/admin/users/{user.username}", headers=admin).json()
    assert shown["disabled"] is True
    assert "totp_secret" not in shown


def test_admin_refuses_a_weak_password(smart: Smart) -> None:
    admin = {**smart.token_for("system/rempart.admin"), **FHIR_JSON}
    body = {"username": "weak-one", "password": "password"}
    refused = httpx.post(f"{smart.origin}/admin/users", content=json.dumps(body), headers=admin)
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
    missing = httpx.get(f"{smart.origin}/admin/users/weak-one", headers=admin)
    assert missing.status_code == 404


# State and scope are never altered silently.


def test_a_state_too_long_is_not_sent_back_altered(flow: Flow) -> None:
    long_state = "s" * 600
    answer = flow.authorize(state=long_state, code_challenge=None)
    if answer.status_code == 303:
        assert query(answer.headers["location"]).get("state") == long_state
    else:
        assert answer.status_code == 400


def test_refresh_asking_for_scopes_never_granted_is_refused(smart: Smart, flow: Flow) -> None:
    tokens = flow.tokens(patient_user(smart, "mona"))
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": APP, "scope": "user/*.cruds"}  # fmt: skip
    widened = httpx.post(smart.auth("token"), data=form)
    assert widened.status_code == 400
    assert error_of(widened) == "invalid_scope"
