"""``rempart``: serve, demo, keys rotate, keys rotate-signing, clients add, users add.

Every command takes ``--data-dir`` (default ``./rempart-data``) or ``--database``,
also read from ``REMPART_DATA_DIR`` and ``REMPART_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
from collections.abc import Sequence

from starlette.types import ASGIApp

from rempart.cli import accounts, demo, keys, token
from rempart.config import Settings, load_settings
from rempart.errors import RempartError
from rempart.security.oauth.signing import SigningKeys
from rempart.storage.open import open_auth_store, open_store


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = load_settings(
        data_dir=getattr(args, "data_dir", None), database_url=getattr(args, "database", None)
    )
    try:
        return int(args.run(args, settings))
    except RempartError as error:
        print(f"rempart: {error.message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default ./rempart-data)")
    common.add_argument("--database", help="sqlite:///FILE or postgresql://…")
    parser = argparse.ArgumentParser(prog="rempart", description="Rempart FHIR R4 server")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", parents=[common], help="run the server")
    _server_options(serve)
    serve.set_defaults(run=run_serve)
    demo_cmd = commands.add_parser("demo", parents=[common], help="a server with demo data")
    _server_options(demo_cmd)
    demo_cmd.set_defaults(run=demo.run)
    keys_cmd = commands.add_parser("keys", help="data keys").add_subparsers(required=True)
    rotate = keys_cmd.add_parser("rotate", parents=[common], help="new data key, re-encrypt rows")
    rotate.set_defaults(run=lambda a, s: asyncio.run(keys.rotate(s)))
    signing = keys_cmd.add_parser(
        "rotate-signing", parents=[common], help="new token signing key (old ones still verify)"
    )
    signing.set_defaults(run=lambda a, s: keys.rotate_signing(s))
    accounts.add_parsers(commands, common)
    token.add_parsers(commands)
    return parser


def _server_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=8080)
    command.add_argument("--workers", type=int, default=1)
    command.add_argument("--log-level", default="warning")


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if not _is_loopback(args.host):
        # Bearer tokens and passwords must not cross a network in clear: until Rempart
        # terminates TLS itself, it listens on loopback only (behind a TLS proxy).
        print(
            "rempart: refusing to bind a non-loopback address without TLS",
            file=sys.stderr,
        )
        return 2
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Worker processes rebuild their settings from the environment.
    os.environ["REMPART_DATA_DIR"] = str(settings.storage.data_dir)
    if settings.storage.database_url:
        os.environ["REMPART_DATABASE_URL"] = settings.storage.database_url
    # Keys, schema and database file exist before workers start, so that they never
    # race to create them; an unreachable database is reported here, clearly.
    asyncio.run(_prepare(settings))
    uvicorn.run(
        "rempart.web.factory:app_from_env" if args.workers > 1 else _app(settings),
        factory=args.workers > 1,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        server_header=False,
        access_log=False,
        # No proxy in front yet: never take the client address from X-Forwarded-For.
        proxy_headers=False,
        env_file=None,
    )
    return 0


async def _prepare(settings: Settings) -> None:
    store = await open_store(settings)
    await store.close()
    auth = await open_auth_store(settings)
    await auth.close()
    SigningKeys(settings.storage.data_dir / "keys" / "signing-keys.json")


def _app(settings: Settings) -> ASGIApp:
    from rempart.web import create_app

    return create_app(settings)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only literal loopback addresses are accepted
        return False
