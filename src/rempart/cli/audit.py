"""``rempart audit verify``: prove the audit chain and its signed checkpoints.

Prints ``{"ok": true, "records": N, "checkpoints": K}`` and exits 0, or prints
``{"ok": false, "first_bad": S, "reason": "..."}`` and exits 1 (docs/audit.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rempart.config import Settings
from rempart.security.audit.checkpoints import load_public_key
from rempart.security.audit.verify import ChainCheck, Verdict
from rempart.storage.open_audit import audit_public_key_path, open_audit_store


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(required=True)
    verify = audit.add_parser("verify", parents=[common], help="prove the chain and checkpoints")
    verify.add_argument(
        "--public-key",
        type=Path,
        help="checkpoint public key (default <data-dir>/keys/audit-signing.pub);"
        " better a copy kept away from the server",
    )
    verify.set_defaults(run=lambda a, s: asyncio.run(run_verify(a, s)))


async def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    public_key = load_public_key(args.public_key or audit_public_key_path(settings))
    verdict = await verify_store(settings, public_key)
    if verdict.ok:
        report: dict[str, Any] = {
            "ok": True,
            "records": verdict.records,
            "checkpoints": verdict.checkpoints,
        }
    else:
        report = {"ok": False, "first_bad": verdict.first_bad, "reason": verdict.reason}
    print(json.dumps(report))
    return 0 if verdict.ok else 1


async def verify_store(settings: Settings, public_key: Ed25519PublicKey) -> Verdict:
    store = await open_audit_store(settings, None, create=False)
    try:
        check = ChainCheck(await store.checkpoints(), public_key)  # before the records
        async for record in store.records():
            if check.feed(record) is not None:
                break
        return check.finish()
    finally:
        await store.close()
