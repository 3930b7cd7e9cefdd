"""``rempart audit verify``: prove the audit chain and its signed checkpoints.

Prints ``{"ok": true, "records": N, "checkpoints": K}`` (with ``"first": F`` once
records were purged) and exits 0, or prints ``{"ok": false, "first_bad": S, "reason":
"..."}`` and exits 1 (docs/audit.md).

``rempart audit export`` sends the trail to a SIEM as JSON lines or RFC 5424 syslog, and
``rempart audit purge`` removes what retention no longer requires and was exported
(docs/audit-export.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.security.audit.checkpoints import load_public_key
from rempart.security.audit.export import Destination, JsonLines, export_records
from rempart.security.audit.retention import cutoff, purge_expired
from rempart.security.audit.syslog import SyslogSender
from rempart.security.audit.verify import ChainCheck, Verdict
from rempart.storage.open_audit import (
    audit_public_key_path,
    open_audit_signer,
    open_audit_store,
)


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
    _export_parser(audit, common)
    _purge_parser(audit, common)


async def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    public_key = load_public_key(args.public_key or audit_public_key_path(settings))
    verdict = await verify_store(settings, public_key)
    if verdict.ok:
        report: dict[str, Any] = {
            "ok": True,
            "records": verdict.records,
            "checkpoints": verdict.checkpoints,
        }
        if verdict.first > 1:
            report["first"] = verdict.first
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


def _export_parser(audit: Any, common: argparse.ArgumentParser) -> None:
    export = audit.add_parser("export", parents=[common], help="send the trail to a SIEM")
    export.add_argument("--format", choices=["jsonl", "syslog"], default="jsonl")
    export.add_argument("--output", default="-", help="jsonl: FILE (appended to) or - (stdout)")
    export.add_argument("--syslog-url", help="syslog: tcp://HOST:PORT or tls://HOST:PORT")
    export.add_argument("--syslog-ca", type=Path, help="syslog over TLS: CA file to trust")
    start = export.add_mutually_exclusive_group()
    start.add_argument(
        "--since-last", metavar="NAME", help="start after the last export to NAME; remember"
    )
    start.add_argument("--from-seq", type=int, metavar="N", help="start at record N")
    export.set_defaults(run=lambda a, s: asyncio.run(run_export(a, s)))


def _purge_parser(audit: Any, common: argparse.ArgumentParser) -> None:
    purge = audit.add_parser("purge", parents=[common], help="remove expired, exported records")
    purge.add_argument(
        "--before",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="remove only records before this day; never later than the retention allows",
    )
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--export-name", metavar="NAME", help="only records exported to NAME")
    which.add_argument(
        "--unexported-too", action="store_true", help="also records never exported (explicit)"
    )
    purge.set_defaults(run=lambda a, s: asyncio.run(run_purge(a, s)))


async def run_export(args: argparse.Namespace, settings: Settings) -> int:
    destination = _destination(args)
    after = args.from_seq - 1 if args.from_seq is not None else None
    try:
        store = await open_audit_store(settings, None, create=False)
        try:
            done = await export_records(store, destination, after, args.since_last)
        finally:
            await store.close()
    finally:
        destination.close()
    summary = {"exported": done.count, "first": done.first, "last": done.last}
    to_stdout = args.format == "jsonl" and args.output == "-"
    print(json.dumps(summary), file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _destination(args: argparse.Namespace) -> Destination:
    if args.format == "syslog":
        if not args.syslog_url:
            raise RempartError(Category.INCORRECT, "--format syslog needs --syslog-url")
        return SyslogSender.connect(args.syslog_url, args.syslog_ca)
    if args.output == "-":
        return JsonLines(sys.stdout.buffer, sync=False)
    fd = os.open(args.output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return JsonLines(os.fdopen(fd, "ab"), sync=True)


async def run_purge(args: argparse.Namespace, settings: Settings) -> int:
    before = cutoff(datetime.now(UTC), settings.audit.retention_days, args.before)
    store = await open_audit_store(settings, open_audit_signer(settings), create=False)
    try:
        purged = await purge_expired(store, before, args.export_name)
    finally:
        await store.close()
    if purged is None:
        report: dict[str, Any] = {"purged": 0, "before": before.isoformat()}
    else:
        report = {
            "purged": purged.through - purged.first + 1,
            "first": purged.first,
            "through": purged.through,
            "event": purged.event_seq,
        }
    print(json.dumps(report))
    return 0
