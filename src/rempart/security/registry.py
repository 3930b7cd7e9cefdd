"""Registering clients and user accounts: the checks shared by ``rempart clients add``,
``rempart users add`` and the admin API, and their JSON form (never a secret but the
one-time TOTP enrolment)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from rempart.errors import Category, RempartError
from rempart.security.accounts.passwords import check_password_policy, hash_password
from rempart.security.accounts.totp import new_secret, provisioning_uri
from rempart.security.scopes import split_scopes, well_formed
from rempart.storage.auth_ports import AuthStore, ClientRecord, UserRecord

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@\-]{0,127}")
FHIR_USER = re.compile(
    r"(Patient|Practitioner|PractitionerRole|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}"
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def _incorrect(message: str) -> RempartError:
    return RempartError(Category.INCORRECT, message)


@dataclass(frozen=True)
class ClientSpec:
    client_id: str
    scope: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    redirect_uris: tuple[str, ...] = ()
    public: bool = False


def client_record(spec: ClientSpec) -> ClientRecord:
    """A valid client from what the operator gave; :class:`RempartError` otherwise."""
    if not NAME.fullmatch(spec.client_id):
        raise _incorrect("client id: letters, digits and ._@- only, at most 128")
    scopes = tuple(split_scopes(spec.scope))
    if not scopes or not all(map(well_formed, scopes)):
        raise _incorrect("scope: one or more SMART scopes, space separated")
    for uri in spec.redirect_uris:
        _check_redirect(uri)
    kind = _kind(spec)
    if spec.jwks is not None:
        _check_jwks(spec.jwks)
    if spec.jwks_url is not None and urlsplit(spec.jwks_url).scheme not in ("https", "http"):
        raise _incorrect("jwks url: an https URL")
    return ClientRecord(
        spec.client_id,
        kind,
        scopes,
        spec.redirect_uris,
        spec.jwks,
        spec.jwks_url,
        created=time.time(),
    )


def _kind(spec: ClientSpec) -> str:
    has_keys = spec.jwks is not None or spec.jwks_url is not None
    if spec.jwks is not None and spec.jwks_url is not None:
        raise _incorrect("give the client's keys by value or by URL, not both")
    if spec.public:
        if has_keys:
            raise _incorrect("a public client has no keys")
        if not spec.redirect_uris:
            raise _incorrect("a public client needs at least one redirect URI")
        return "public"
    if not has_keys:
        raise _incorrect("a confidential or backend client needs its public keys (JWKS)")
    return "confidential" if spec.redirect_uris else "backend"


def _check_redirect(uri: str) -> None:
    parts = urlsplit(uri)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not (parts.scheme == "https" or loopback) or not parts.netloc or parts.fragment:
        raise _incorrect("redirect URI: https (http only on loopback), without fragment")


def _check_jwks(jwks: dict[str, Any]) -> None:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise _incorrect("jwks: a JSON object with a non-empty keys list")
    for key in keys:
        if not isinstance(key, dict) or not key.get("kid") or key.get("kty") not in ("RSA", "EC"):
            raise _incorrect("jwks: every key needs a kid and kty RSA or EC")
        if "d" in key:
            raise _incorrect("jwks: private key material given; register public keys only")


@dataclass(frozen=True)
class UserSpec:
    username: str
    password: str
    fhir_user: str | None = None
    role: str | None = None
    end_date: str | None = None


def user_record(spec: UserSpec) -> UserRecord:
    if not NAME.fullmatch(spec.username):
        raise _incorrect("username: letters, digits and ._@- only, at most 128")
    reason = check_password_policy(spec.password)
    if reason:
        raise _incorrect(f"password refused: {reason}")
    if spec.fhir_user is not None and not FHIR_USER.fullmatch(spec.fhir_user):
        raise _incorrect("fhir user: Patient/ID, Practitioner/ID…")
    if spec.end_date is not None:
        try:
            date.fromisoformat(spec.end_date)
        except ValueError:
            raise _incorrect("end date: YYYY-MM-DD") from None
    if spec.role is not None and not NAME.fullmatch(spec.role):
        raise _incorrect("role: letters, digits and ._@- only")
    return UserRecord(
        spec.username,
        hash_password(spec.password),
        new_secret(),
        spec.fhir_user,
        spec.role,
        spec.end_date,
        created=time.time(),
    )


def client_json(client: ClientRecord) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "kind": client.kind,
        "scope": " ".join(client.scopes),
        "redirect_uris": list(client.redirect_uris),
        "jwks": client.jwks,
        "jwks_url": client.jwks_url,
        "disabled": client.disabled,
    }


def user_json(user: UserRecord, enrol: bool = False) -> dict[str, Any]:
    """The account; with ``enrol``, its TOTP secret, shown once at creation."""
    answer: dict[str, Any] = {
        "username": user.username,
        "fhir_user": user.fhir_user,
        "role": user.role,
        "end_date": user.end_date,
        "disabled": user.disabled,
    }
    if enrol:
        answer["totp_secret"] = user.totp_secret
        answer["totp_uri"] = provisioning_uri(user.totp_secret, user.username)
    return answer


async def disable_client(store: AuthStore, client_id: str) -> bool:
    """Disables a client; its tokens stop working at once."""
    done = await store.disable_client(client_id)
    if done:
        await store.block(f"client:{client_id}", time.time() + 10 * 365 * 86400)
    return done


async def disable_user(store: AuthStore, username: str) -> bool:
    """Disables an account; its tokens and refresh tokens stop working at once."""
    done = await store.disable_user(username)
    if done:
        await store.block(f"user:{username}", time.time() + 10 * 365 * 86400)
    return done
