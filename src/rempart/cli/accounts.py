"""``rempart clients add`` and ``rempart users add``: register a client or an account
in the authorization server's store and print it as JSON (see design.md, outside
interface). A user's TOTP secret is printed once, for enrolment."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.security.registry import (
    ClientSpec,
    UserSpec,
    client_json,
    client_record,
    user_json,
    user_record,
)
from rempart.storage.open import open_auth_store


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    clients = commands.add_parser("clients", help="SMART clients").add_subparsers(required=True)
    add = clients.add_parser("add", parents=[common], help="register a client")
    add.add_argument("--client-id", required=True)
    add.add_argument("--scope", required=True, help='allowed scopes, e.g. "system/*.rs"')
    add.add_argument("--jwks-file", type=Path, help="the client's public keys (JWKS JSON)")
    add.add_argument("--jwks-url", help="where the client publishes its JWKS (https)")
    add.add_argument("--redirect-uri", action="append", default=[], help="repeatable")
    add.add_argument("--public", action="store_true", help="public app: PKCE, no keys")
    add.set_defaults(run=lambda a, s: asyncio.run(add_client(a, s)))
    users = commands.add_parser("users", help="user accounts").add_subparsers(required=True)
    add_user_cmd = users.add_parser("add", parents=[common], help="create an account")
    add_user_cmd.add_argument("--username", required=True)
    add_user_cmd.add_argument("--password-file", type=Path, required=True)
    add_user_cmd.add_argument("--fhir-user", help="Patient/ID, Practitioner/ID…")
    add_user_cmd.add_argument("--role")
    add_user_cmd.add_argument("--end-date", help="last day of access, YYYY-MM-DD")
    add_user_cmd.set_defaults(run=lambda a, s: asyncio.run(add_user(a, s)))


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RempartError(Category.INCORRECT, f"cannot read the {what} file: {exc}") from None


async def add_client(args: argparse.Namespace, settings: Settings) -> int:
    jwks = None
    if args.jwks_file is not None:
        try:
            jwks = json.loads(_read(args.jwks_file, "JWKS"))
        except json.JSONDecodeError:
            raise RempartError(Category.INCORRECT, "the JWKS file is not JSON") from None
    spec = ClientSpec(
        args.client_id, args.scope, jwks, args.jwks_url, tuple(args.redirect_uri), args.public
    )
    client = client_record(spec)
    store = await _open(settings)
    try:
        await store.put_client(client)
    finally:
        await store.close()
    print(json.dumps(client_json(client), indent=2))
    return 0


async def add_user(args: argparse.Namespace, settings: Settings) -> int:
    password = _read(args.password_file, "password").rstrip("\r\n")
    spec = UserSpec(args.username, password, args.fhir_user, args.role, args.end_date)
    user = user_record(spec)
    store = await _open(settings)
    try:
        await store.put_user(user)
    finally:
        await store.close()
    print(json.dumps(user_json(user, enrol=True), indent=2))
    return 0


async def _open(settings: Settings) -> Any:
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return await open_auth_store(settings)
    except RempartError:
        raise
    except Exception as exc:  # noqa: BLE001 - a driver error becomes one clear line
        print(f"rempart: cannot open the database: {exc}", file=sys.stderr)
        raise RempartError(Category.UNAVAILABLE, "database unavailable") from None
