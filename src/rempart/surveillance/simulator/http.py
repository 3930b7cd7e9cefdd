"""The simulator's only HTTP code: the requests themselves (each with its own
``X-Request-Id``, so that the labelled log joins the audit trail), the SMART App
Launch flow as a browser and an app run it (authorize, login form with password and
TOTP, consent, code, token with PKCE S256; refresh), and the Backend Services token
(client_credentials with a ``private_key_jwt`` assertion, ES384).

SMART App Launch 2.2 §App Launch, §Refresh; SMART Backend Services §Obtaining an
access token; RFC 7636 (PKCE).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import orjson
import pyotp
from cryptography.hazmat.primitives import serialization

from rempart.surveillance.simulator.accounts import Credentials
from rempart.surveillance.simulator.actors import APP_CLIENT, APP_REDIRECT, Actor

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HIDDEN_TX = re.compile(r'<input type="hidden" name="tx" value="([^"]+)">')
FHIR_JSON = "application/fhir+json"
EARLY = 30.0
"""Seconds before expiry at which an access token is renewed."""


@dataclass(frozen=True)
class Stamp:
    """Who sends a request and why: what the labelled log says besides the exchange."""

    actor: Actor
    scenario: str
    label: str
    moment: datetime
    patient: str | None = None


Recorder = Callable[[Stamp, str, str, int, str, float], None]
"""Told (stamp, method, path, status, request id, milliseconds) after each request;
status 0 when no answer came."""


@dataclass
class Session:
    access_token: str
    expires: float
    """``time.monotonic()`` after which the token is stale."""
    refresh_token: str | None = None
    shift: datetime | None = None

    def fresh(self) -> bool:
        return time.monotonic() < self.expires - EARLY


class LoginRefused(Exception):
    """The authorization server did not let this account or client in."""


class Http:
    def __init__(self, origin: str, record: Recorder, timeout: float = 30.0) -> None:
        self.origin = origin.rstrip("/")
        self.record = record
        self.client = httpx.AsyncClient(base_url=self.origin, timeout=timeout)
        self._totp_used: dict[str, int] = {}

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        stamp: Stamp,
        method: str,
        path: str,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        browser: httpx.AsyncClient | None = None,
    ) -> httpx.Response | None:
        """Sends one request and records it; None when no answer came."""
        request_id = f"sim-{secrets.token_hex(12)}"
        headers = {"x-request-id": request_id, "accept": FHIR_JSON}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["content-type"] = FHIR_JSON
            content = orjson.dumps(body)
        started = time.perf_counter()
        try:
            answer = await (browser or self.client).request(
                method, path, headers=headers, content=content, data=form
            )
        except httpx.HTTPError:
            answer = None
        elapsed = (time.perf_counter() - started) * 1000
        status = answer.status_code if answer is not None else 0
        self.record(stamp, method, urlsplit(path).path + _query(path), status, request_id, elapsed)
        return answer

    async def login(self, stamp: Stamp, user: Credentials, scope: str) -> Session:
        """The whole SMART App Launch flow, as a browser and a public app run it."""
        verifier = secrets.token_urlsafe(48)
        challenge = _s256(verifier)
        async with httpx.AsyncClient(base_url=self.origin, timeout=self.client.timeout) as browser:
            params = {
                "response_type": "code",
                "client_id": APP_CLIENT,
                "redirect_uri": APP_REDIRECT,
                "scope": scope,
                "state": secrets.token_urlsafe(16),
                "aud": f"{self.origin}/fhir",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            page = await self.request(
                stamp, "GET", _with_query("/auth/authorize", params), browser=browser
            )
            tx = _hidden_tx(page)
            form = {
                "tx": tx,
                "username": user.username,
                "password": user.password,
                "totp": await self._totp(user),
            }
            consent = await self.request(stamp, "POST", "/auth/login", form=form, browser=browser)
            if consent is None or 'name="approve"' not in consent.text:
                raise LoginRefused("login refused")
            approve = {"tx": _hidden_tx(consent), "approve": "1"}
            back = await self.request(stamp, "POST", "/auth/consent", form=approve, browser=browser)
        code = _code(back, params["state"])
        exchange = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_id": APP_CLIENT,
        }
        return _session(await self.request(stamp, "POST", "/auth/token", form=exchange))

    async def refresh(self, stamp: Stamp, session: Session) -> Session:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(session.refresh_token),
            "client_id": APP_CLIENT,
        }
        return _session(await self.request(stamp, "POST", "/auth/token", form=form))

    async def backend_token(self, stamp: Stamp, key_pem: bytes, kid: str, scope: str) -> Session:
        """Backend Services: a signed assertion (``aud`` the token URL, a fresh ``jti``)."""
        client_id = stamp.actor.name
        key = serialization.load_pem_private_key(key_pem, None)
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{self.origin}/auth/token",
            "exp": now + 240,
            "jti": secrets.token_urlsafe(16),
        }
        signed = jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid})  # type: ignore[arg-type]
        form = {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        }
        return _session(await self.request(stamp, "POST", "/auth/token", form=form))

    async def _totp(self, user: Credentials) -> str:
        """The current code; a code is accepted once, so wait for the next one if this
        account already used the current one."""
        totp = pyotp.TOTP(user.totp_secret)
        window = int(time.time()) // totp.interval
        if self._totp_used.get(user.username) == window:
            await asyncio.sleep((window + 1) * totp.interval - time.time() + 0.05)
            window += 1
        self._totp_used[user.username] = window
        return totp.at(window * totp.interval)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _with_query(path: str, params: dict[str, str]) -> str:
    return str(httpx.URL(path, params=params))


def _query(path: str) -> str:
    """The query as logged: authorization requests keep only their path (the PKCE
    challenge and state are nobody's business in a log)."""
    parts = urlsplit(path)
    if not parts.query or parts.path.startswith("/auth/"):
        return ""
    return f"?{parts.query}"


def _hidden_tx(page: httpx.Response | None) -> str:
    found = HIDDEN_TX.search(page.text) if page is not None and page.status_code == 200 else None
    if found is None:
        raise LoginRefused(f"no form (status {page.status_code if page is not None else 0})")
    return unescape(found.group(1))


def _code(back: httpx.Response | None, state: str) -> str:
    if back is None or back.status_code != 303:
        raise LoginRefused("consent not accepted")
    query = parse_qs(urlsplit(back.headers["location"]).query)
    if query.get("state") != [state] or "code" not in query:
        raise LoginRefused("no code in the redirect")
    return query["code"][0]


def _session(answer: httpx.Response | None) -> Session:
    if answer is None or answer.status_code != 200:
        raise LoginRefused(
            f"token refused (status {answer.status_code if answer is not None else 0})"
        )
    tokens = answer.json()
    expires = time.monotonic() + float(tokens.get("expires_in", 300))
    return Session(tokens["access_token"], expires, tokens.get("refresh_token"))
