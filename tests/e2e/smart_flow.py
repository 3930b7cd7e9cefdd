"""A SMART App Launch client for end-to-end tests: accounts and clients made with the
real ``rempart`` CLI, PKCE, and the authorization-code flow driven over HTTP the way
a browser would (login form, cookie, consent). Used by ``test_smart_app_launch.py``
and ``test_smart_browser.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

from conftest import ServerProcess, bearer, mint_token

PATIENT_SCOPES = "openid fhirUser launch/patient patient/*.rs offline_access"
FORM = {"content-type": "application/x-www-form-urlencoded"}
FHIR_JSON = {"content-type": "application/fhir+json"}
HIDDEN_TX = re.compile(r'<input type="hidden" name="tx" value="([^"]+)">')
ALERT = re.compile(r'<p role="alert">([^<]*)</p>')


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden_tx(html: str) -> str:
    found = HIDDEN_TX.search(html)
    assert found, html[:500]
    return unescape(found.group(1))


def alert(html: str) -> str | None:
    found = ALERT.search(html)
    return unescape(found.group(1)) if found else None


def query(location: str) -> dict[str, str]:
    """The query of a redirect, one value per name."""
    pairs = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in pairs.values()), location
    return {k: v[0] for k, v in pairs.items()}


@dataclass(frozen=True)
class User:
    username: str
    password: str
    totp_secret: str

    def totp(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


@dataclass(frozen=True)
class Smart:
    """One running server seen from the outside: its URLs, its CLI, its flow."""

    server: ServerProcess

    @property
    def origin(self) -> str:
        return self.server.base.removesuffix("/fhir")

    @property
    def base(self) -> str:
        return self.server.base

    def auth(self, name: str) -> str:
        return f"{self.origin}/auth/{name}"

    def token_for(self, scopes: str) -> dict[str, str]:
        """Authorization for a backend client holding ``scopes`` (minted by the tests)."""
        return bearer(mint_token(self.server.settings, self.base, scopes))

    def cli(self, *args: str) -> dict[str, Any]:
        """``rempart ARGS`` against this server's store; its JSON output."""
        storage = self.server.settings.storage
        cmd = [sys.executable, "-m", "rempart.cli", *args, "--data-dir", str(storage.data_dir)]
        if storage.database_url:
            cmd += ["--database", storage.database_url]
        env = {**os.environ, "REMPART_PG_SCHEMA": storage.postgres_schema}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def add_user(
        self, username: str, fhir_user: str | None = None, end_date: str | None = None
    ) -> User:
        password = f"correct horse {secrets.token_hex(8)}"
        password_file = self.server.settings.storage.data_dir.parent / f"pw-{username}"
        password_file.write_text(password + "\n", encoding="utf-8")
        args = ["users", "add", "--username", username, "--password-file", str(password_file)]
        if fhir_user:
            args += ["--fhir-user", fhir_user]
        if end_date:
            args += ["--end-date", end_date]
        answer = self.cli(*args)
        assert answer["username"] == username
        return User(username, password, answer["totp_secret"])

    def add_public_client(self, client_id: str, redirect_uri: str, scope: str) -> None:
        answer = self.cli(
            "clients", "add", "--client-id", client_id, "--scope", scope,
            "--redirect-uri", redirect_uri, "--public",
        )  # fmt: skip
        assert answer["kind"] == "public"

    def create_patient(self, patient_id: str) -> None:
        body = {"resourceType": "Patient", "id": patient_id, "name": [{"family": "Martin"}]}
        answer = httpx.put(
            f"{self.base}/Patient/{patient_id}",
            content=json.dumps(body),
            headers={**self.server.headers, **FHIR_JSON},
        )
        assert answer.status_code == 201, answer.text


@dataclass
class Flow:
    """One authorization-code flow of a public client, as a browser runs it."""

    smart: Smart
    client_id: str
    redirect_uri: str
    scope: str = PATIENT_SCOPES
    state: str = ""
    verifier: str = ""
    challenge: str = ""

    def __post_init__(self) -> None:
        self.state = self.state or secrets.token_urlsafe(16)
        self.verifier, self.challenge = pkce_pair()
        self.browser = httpx.Client(timeout=10)

    def close(self) -> None:
        self.browser.close()

    def params(self, **changes: str | None) -> dict[str, str]:
        """The authorization request; a change to None drops the parameter."""
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "aud": self.smart.base,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "nonce": "n-" + self.state,
        }
        params.update(changes)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, **changes: str | None) -> httpx.Response:
        return self.browser.get(self.smart.auth("authorize"), params=self.params(**changes))

    def login(self, user: User, totp: str | None = None) -> httpx.Response:
        """Authorize, then post the login form; the page that answers."""
        page = self.authorize()
        assert page.status_code == 200, page.text
        return self.post_login(hidden_tx(page.text), user, totp)

    def post_login(self, tx: str, user: User, totp: str | None = None) -> httpx.Response:
        form = {
            "tx": tx,
            "username": user.username,
            "password": user.password,
            "totp": totp if totp is not None else user.totp(),
        }
        return self.browser.post(self.smart.auth("login"), data=form)

    def code(self, user: User) -> str:
        """Login and approval; the code from the redirect, its state and issuer checked."""
        consent = self.login(user)
        assert consent.status_code == 200, consent.text
        approved = self.browser.post(
            self.smart.auth("consent"), data={"tx": hidden_tx(consent.text), "approve": "1"}
        )
        assert approved.status_code == 303, approved.text
        location = approved.headers["location"]
        assert location.startswith(self.redirect_uri + "?")
        back = query(location)
        assert back["state"] == self.state
        assert back["iss"] == self.smart.base
        return back["code"]

    def exchange(self, code: str, **changes: str | None) -> httpx.Response:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            "client_id": self.client_id,
        }
        form.update(changes)
        return token_request(self.smart, {k: v for k, v in form.items() if v is not None})

    def tokens(self, user: User) -> dict[str, Any]:
        """The whole flow; the token answer."""
        answer = self.exchange(self.code(user))
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens


def token_request(smart: Smart, form: dict[str, str]) -> httpx.Response:
    return httpx.post(smart.auth("token"), data=form, timeout=10)


def refresh(smart: Smart, refresh_token: str, client_id: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return token_request(smart, form)


def read_patient(smart: Smart, patient_id: str, access_token: str) -> httpx.Response:
    return httpx.get(f"{smart.base}/Patient/{patient_id}", headers=bearer(access_token))


def today_plus(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + days * 86400))
