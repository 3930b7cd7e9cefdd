"""``rempart``: serve, demo, keys rotate, keys rotate-signing, clients add, users add,
audit verify, audit export, audit purge, synth, import, simulate.

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
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.types import ASGIApp

from rempart.cli import accounts, audit, demo, importer, keys, simulate, synth, token
from rempart.config import Settings, load_settings
from rempart.errors import RempartError
from rempart.security.oauth.signing import SigningKeys
from rempart.storage.open import open_auth_store, open_store

if TYPE_CHECKING:
    from rempart.web.tls import TlsConfig


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
    demo.add_options(demo_cmd)
    demo_cmd.set_defaults(run=demo.run)
    keys_cmd = commands.add_parser("keys", help="data keys").add_subparsers(required=True)
    rotate = keys_cmd.add_parser("rotate", parents=[common], help="new data key, re-encrypt rows")
    rotate.set_defaults(run=lambda a, s: asyncio.run(keys.rotate(s)))
    signing = keys_cmd.add_parser(
        "rotate-signing", parents=[common], help="new token signing key (old ones still verify)"
    )
    signing.set_defaults(run=lambda a, s: keys.rotate_signing(s))
    accounts.add_parsers(commands, common)
    audit.add_parsers(commands, common)
    token.add_parsers(commands)
    synth.add_parsers(commands)
    importer.add_parsers(commands, common)
    simulate.add_parsers(commands, common)
    return parser


def _server_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=8080)
    command.add_argument("--workers", type=int, default=1)
    command.add_argument("--log-level", default="warning")
    tls = command.add_argument_group("TLS (docs/configuration.md#tls)")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate chain")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key")
    tls.add_argument(
        "--tls-client-ca", type=Path, metavar="FILE", help="mutual TLS: CA of client certificates"
    )
    tls.add_argument(
        "--tls-require-client-cert",
        action="store_true",
        help="mutual TLS: refuse clients without a certificate",
    )


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    # Imported here: the other commands need none of the web package.
    from rempart.web.tls import TlsError, uvicorn_options

    try:
        tls = _checked_tls(args)
    except TlsError as error:
        print(f"rempart: {error}", file=sys.stderr)
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
        **uvicorn_options(tls),
    )
    return 0


def _checked_tls(args: argparse.Namespace) -> TlsConfig | None:
    from rempart.web.tls import TlsError, check

    tls = tls_config(args)
    if tls is not None:
        check(tls)
    if not may_bind(args.host, tls is not None):
        # Bearer tokens and passwords must not cross a network in clear: without TLS,
        # Rempart listens on loopback only (behind a TLS proxy).
        raise TlsError("refusing to bind a non-loopback address without TLS")
    return tls


def tls_config(args: argparse.Namespace) -> TlsConfig | None:
    """The TLS options, checked for consistency (``tls.check`` then checks the files)."""
    from rempart.web.tls import TlsConfig, TlsError

    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca or args.tls_require_client_cert:
            raise TlsError("mutual TLS options need --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise TlsError("--tls-cert and --tls-key go together")
    if args.tls_require_client_cert and args.tls_client_ca is None:
        raise TlsError("--tls-require-client-cert needs --tls-client-ca")
    return TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca, args.tls_require_client_cert)


def may_bind(host: str, tls: bool) -> bool:
    """Any address with TLS; without it, loopback only."""
    return tls or _is_loopback(host)


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
