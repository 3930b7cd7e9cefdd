"""What the audit trail costs on a read by id (issue 6's benchmark).

One run, one data directory, two servers side by side on it: Rempart as shipped
(every answer held until its AuditEvents are committed: SQLite ``synchronous=FULL``
on ``audit.db``, PostgreSQL a normal commit) and the same application built with
``create_app(..., audit=False)`` (``unaudited_app.py``), gateway included in both.
Both answer the same ``GET /fhir/Patient/<id>`` mix under ``wrk`` with the load of
``gateway.py``; the rounds alternate on, off, on, off… Reported: each server's median,
its spread (lowest and highest round) and the cost, ``1 - on / off`` in requests per
second. Target (issue 6): the audit costs under 10 % of throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import auth
import gateway
import servers

TARGET_COST = 0.10
"""The audit may cost less than 10 % of the unaudited throughput."""
METRICS = ("rps", "p50_ms", "p99_ms")
LIMITED = ("IP", "AUTH", "CLIENT", "USER")
UNLIMITED = {f"REMPART_RATELIMIT_{n}_PER_MINUTE": str(10**9) for n in LIMITED}


def start_unaudited(storage: servers.Storage, audited: servers.Server) -> servers.Server:
    """The rate limiter is on in both, with budgets no run reaches (as ``start_rempart``)."""
    server = gateway.start_factory(storage, "unaudited", "unaudited_app:build", UNLIMITED)
    base = f"http://{servers.HOST}:{server.port}/fhir"  # the token's audience is the port's
    server.headers = auth.bearer(auth.bench_token(storage.data_dir, base))
    return server


def run(args: argparse.Namespace) -> dict[str, Any]:
    return summary(args, gateway.compare(args, ("on", "off"), start_unaudited))


def summary(args: argparse.Namespace, rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in METRICS}
        for name, runs in rounds.items()
    }
    spread = {
        name: {"rps_min": min(r["rps"] for r in runs), "rps_max": max(r["rps"] for r in runs)}
        for name, runs in rounds.items()
    }
    on, off = median["on"]["rps"], median["off"]["rps"]
    errors = sum(r["errors_status"] + r["errors_socket"] for runs in rounds.values() for r in runs)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "settings": {
            k: getattr(args, k) for k in ("connections", "duration", "warmup", "rounds", "preload")
        },
        "median": median,
        "spread": spread,
        "rounds": rounds,
        "on_over_off": round(on / off, 3),
        "audit_cost_pct": round(100 * (1 - on / off), 1),
        "target_met": on > (1 - TARGET_COST) * off,
        "errors": errors,
    }


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    lines = [
        f"# Audit cost on a read by id ({doc['backend']}, {doc['date']})", "",
        f"wrk -t1 -c{s['connections']}, {s['rounds']} alternating rounds of {s['duration']} s "
        f"per server (warm-up {s['warmup']} s), {s['preload']} patients, one worker each, "
        "gateway on in both.", "",
        "| server | req/s (median) | req/s (lowest to highest round) | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, label in (("on", "audit on"), ("off", "audit off")):
        m, sp = doc["median"][name], doc["spread"][name]
        lines.append(
            f"| {label} | {m['rps']:,.0f} | {sp['rps_min']:,.0f} to {sp['rps_max']:,.0f} "
            f"| {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |"
        )
    verdict = "met" if doc["target_met"] else "not met"
    return "\n".join([
        *lines, "",
        f"Audit cost: **{doc['audit_cost_pct']} %** of throughput (on / off = "
        f"{doc['on_over_off']}); target under 10 %: **{verdict}**. Errors: {doc['errors']}.", "",
    ])  # fmt: skip


def keep(path: Path, key: str, doc: dict[str, Any]) -> None:
    """The latest run of each backend and concurrency, side by side in one file."""
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[key] = {k: v for k, v in doc.items() if k != "rounds"}
    path.write_text(json.dumps(runs, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    args = gateway.comparison_parser(__doc__.splitlines()[0], rounds=5).parse_args(argv)
    clock = time.monotonic()
    doc = run(args)
    doc["seconds"] = round(time.monotonic() - clock, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"audit-{args.backend}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    stem.with_suffix(".md").write_text(markdown(doc))
    keep(args.out / "audit.json", f"{args.backend}-c{args.connections}", doc)
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
