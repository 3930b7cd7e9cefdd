"""Registering the simulator's accounts and clients in the authorization server's
store, as ``rempart users add`` and ``rempart clients add`` do (same checks, same
records), and keeping their secrets where the simulator finds them again.

The secrets (passwords, TOTP seeds, the lab system's private key) are written to
``<data-dir>/simulator/`` (folder 0700, files 0600): a re-run reuses the accounts
instead of making new ones. They are test credentials of a synthetic hospital; never
point the simulator at a store holding real accounts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from rempart.config import Settings
from rempart.security.registry import ClientSpec, UserSpec, client_record, user_record
from rempart.security.roles import ROLE_SCOPES
from rempart.storage.auth_ports import AuthStore
from rempart.storage.open import open_auth_store
from rempart.surveillance.simulator.actors import APP_CLIENT, APP_REDIRECT, LAB_CLIENT, Actor, Cast

APP_SCOPE = "openid fhirUser launch/patient offline_access user/*.cruds patient/*.rs"
LAB_SCOPES = "system/Patient.rs system/Observation.cruds system/DiagnosticReport.cruds"
LAB_KID = "sim-lab-1"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    totp_secret: str
    role: str
    end_date: str | None = None


@dataclass
class Keyring:
    """What the simulator needs to log in and get tokens."""

    users: dict[str, Credentials]
    lab_key: bytes
    """The lab system's private key (PEM)."""
    lab_kid: str = LAB_KID

    def scopes(self, actor: Actor) -> str:
        """The scopes an actor's app asks for: exactly what its role allows."""
        if actor.backend:
            return LAB_SCOPES
        if actor.role == "patient":
            return "openid fhirUser launch/patient offline_access patient/*.rs"
        return "openid fhirUser offline_access " + " ".join(ROLE_SCOPES[actor.role])


def folder(settings: Settings) -> Path:
    return settings.storage.data_dir / "simulator"


def account_end(contract_end: str | None, reference: date, today: date) -> str | None:
    """The account's last day: the contract end moved from the hospital's reference date
    to today, so that whoever had left at the reference date has left today too, and
    whoever was still there is still there."""
    if contract_end is None:
        return None
    return (date.fromisoformat(contract_end) + (today - reference)).isoformat()


async def register(settings: Settings, cast: Cast, reference: date) -> Keyring:
    """Registers what is missing; returns every secret (new and kept)."""
    today = datetime.now(UTC).date()
    place = folder(settings)
    place.mkdir(parents=True, exist_ok=True, mode=0o700)
    saved = _load(place / "accounts.json")
    store = await open_auth_store(settings)
    try:
        await _app_client(store)
        lab_key = await _lab_client(store, place / f"{LAB_CLIENT}.pem")
        for actor in cast.accounts():
            end = account_end(actor.end_date, reference, today)
            saved[actor.name] = await _account(store, actor, end, saved.get(actor.name))
    finally:
        await store.close()
    _private_write(place / "accounts.json", orjson.dumps({k: asdict(v) for k, v in saved.items()}))
    return Keyring(saved, lab_key)


async def _app_client(store: AuthStore) -> None:
    if await store.client(APP_CLIENT) is None:
        spec = ClientSpec(APP_CLIENT, APP_SCOPE, redirect_uris=(APP_REDIRECT,), public=True)
        await store.put_client(client_record(spec))


async def _lab_client(store: AuthStore, key_file: Path) -> bytes:
    known = await store.client(LAB_CLIENT)
    if known is not None and key_file.is_file():
        return key_file.read_bytes()
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwks = {"keys": [{**public, "kid": LAB_KID, "alg": "ES384", "use": "sig"}]}
    spec = ClientSpec(LAB_CLIENT, LAB_SCOPES, jwks)
    await store.put_client(client_record(spec), replace=known is not None)
    _private_write(key_file, pem)
    return pem


async def _account(
    store: AuthStore, actor: Actor, end: str | None, saved: Credentials | None
) -> Credentials:
    existing = await store.user(actor.name)
    if existing is not None and saved is not None and existing.end_date == end:
        return saved
    password = secrets.token_urlsafe(18)
    spec = UserSpec(actor.name, password, actor.fhir_user, actor.role, end)
    record = user_record(spec)
    await store.put_user(record, replace=existing is not None)
    return Credentials(actor.name, password, record.totp_secret, actor.role, end)


def _load(path: Path) -> dict[str, Credentials]:
    if not path.is_file():
        return {}
    raw: dict[str, dict[str, Any]] = orjson.loads(path.read_bytes())
    return {name: Credentials(**fields) for name, fields in raw.items()}


def _private_write(path: Path, content: bytes) -> None:
    """Replaces ``path`` with ``content``, readable by the owner only."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temporary, path)
