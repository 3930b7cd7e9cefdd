"""What the gateway costs on a read by id (issue 5's benchmark).

One run, one data directory, two servers started side by side on it: Rempart as
shipped (bearer token verified, blocks looked up, scopes checked, reach computed, rate
limits charged per IP and per client) and the same application built with
``create_app(..., gateway=False)`` (``ungated_app.py``). Both answer the same
``GET /fhir/Patient/<id>`` mix under ``wrk``; the runs alternate A, B, A, B… so that
drift on this shared 2-core machine hits both alike. Reported: the median of each
server's runs and the throughput ratio. Target (issue 5): the gateway costs under 15 %
of throughput, i.e. gated > 0.85 * ungated — reported whether met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import loadgen
import preload
import servers

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_COST = 0.15
"""The gateway may cost less than 15 % of the ungated throughput."""


def start_ungated(storage: servers.Storage, gated: servers.Server) -> servers.Server:
    ungated = start_factory(storage, "ungated", "ungated_app:build")
    ungated.headers = gated.headers  # same bytes on the wire; nobody checks them
    return ungated


def start_factory(
    storage: servers.Storage, name: str, factory: str, env: dict[str, str] | None = None
) -> servers.Server:
    """``bench/<factory>`` served by uvicorn on ``storage``, one worker, as ``rempart serve``
    would serve it (httptools and uvloop when installed, no access log)."""
    port = servers.free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(servers.BENCH_DIR),
        "--factory", factory, "--host", servers.HOST, "--port", str(port),
        "--no-access-log", "--no-server-header", "--log-level", "warning",
        *servers.uvicorn_impl_flags(),
    ]  # fmt: skip
    env = dict(os.environ, **(env or {}), REMPART_DATA_DIR=str(storage.data_dir))
    if storage.pg_url:
        env["REMPART_DATABASE_URL"] = storage.pg_url
        env["REMPART_PG_SCHEMA"] = str(storage.schema)
    server = servers.Server(name, argv, env, storage.data_dir / f"{name}.log")
    server.wait_ready("/healthz")
    return server


def run(args: argparse.Namespace) -> dict[str, Any]:
    return _summary(args, compare(args, ("gated", "ungated"), start_ungated))


Other = Callable[[servers.Storage, servers.Server], servers.Server]


def compare(
    args: argparse.Namespace, names: tuple[str, str], start_other: Other
) -> dict[str, list[dict[str, Any]]]:
    """Reads by id on Rempart as shipped (``names[0]``) and on another build of it on the
    same data (``names[1]``, started by ``start_other``), in alternating rounds."""
    storage = servers.fresh_storage(args.backend, args.database)
    started: list[servers.Server] = []
    try:
        shipped = servers.start_rempart(storage, 1)
        started.append(shipped)
        ids = preload.preload(shipped.port, args.preload, headers=shipped.headers)
        paths = storage.data_dir / "read-paths.txt"
        preload.write_lines(paths, [f"/fhir/{t}/{i}" for t, i in ids])
        started.append(start_other(storage, shipped))
        lua = loadgen.script("read", storage.data_dir)
        load = loadgen.Load(args.connections, args.duration, args.warmup)
        pair = [(names[0], shipped), (names[1], started[1])]
        return alternate(pair, lua, paths, load, args.rounds)
    finally:
        for server in started:
            server.stop()
        storage.drop()


def alternate(
    pair: list[tuple[str, servers.Server]],
    lua: Path,
    paths: Path,
    load: loadgen.Load,
    count: int,
) -> dict[str, list[dict[str, Any]]]:
    """``count`` rounds of wrk on each server in turn (A, B, A, B…), so that drift on
    this shared machine hits both alike; each server's results in order."""
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in pair}
    for _ in range(count):
        for name, server in pair:
            url = f"http://{servers.HOST}:{server.port}"
            result = loadgen.measure(url, lua, paths, load, server.process.pid, server.headers)
            server.check_alive()
            rounds[name].append(result)
            print(f"   {name:8} {result['rps']:>9,.0f} req/s  p50 {result['p50_ms']:.2f}  "
                  f"p99 {result['p99_ms']:.2f} ms  errors {result['errors_status']}/"
                  f"{result['errors_socket']}", flush=True)  # fmt: skip
    return rounds


def _summary(args: argparse.Namespace, rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
        for name, runs in rounds.items()
    }
    ratio = median["ungated"]["rps"] / median["gated"]["rps"]
    errors = sum(r["errors_status"] + r["errors_socket"] for runs in rounds.values() for r in runs)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "settings": {
            k: getattr(args, k) for k in ("connections", "duration", "warmup", "rounds", "preload")
        },
        "median": median,
        "rounds": rounds,
        "ungated_over_gated": round(ratio, 3),
        "gateway_cost_pct": round(100 * (1 - median["gated"]["rps"] / median["ungated"]["rps"]), 1),
        "target_met": median["gated"]["rps"] > (1 - TARGET_COST) * median["ungated"]["rps"],
        "errors": errors,
    }


def markdown(doc: dict[str, Any]) -> str:
    g, u = doc["median"]["gated"], doc["median"]["ungated"]
    s = doc["settings"]
    return "\n".join([
        f"# Gateway cost on a read by id ({doc['backend']}, {doc['date']})", "",
        f"wrk -t1 -c{s['connections']}, {s['rounds']} alternating rounds of {s['duration']} s "
        f"per server (warm-up {s['warmup']} s), {s['preload']} patients, one worker each.", "",
        "| server | req/s (median) | p50 ms | p99 ms |", "|---|---:|---:|---:|",
        f"| with gateway | {g['rps']:,.0f} | {g['p50_ms']:.2f} | {g['p99_ms']:.2f} |",
        f"| without gateway | {u['rps']:,.0f} | {u['p50_ms']:.2f} | {u['p99_ms']:.2f} |", "",
        f"Gateway cost: **{doc['gateway_cost_pct']} %** of throughput "
        f"(without / with = {doc['ungated_over_gated']}); target under 15 %: "
        f"**{'met' if doc['target_met'] else 'not met'}**. Errors: {doc['errors']}.", "",
    ])  # fmt: skip


def comparison_parser(description: str, rounds: int) -> argparse.ArgumentParser:
    """The options of a comparison run (this one and ``bench/audit.py``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--preload", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = comparison_parser(__doc__.splitlines()[0], rounds=3).parse_args(argv)
    clock = time.monotonic()
    doc = run(args)
    doc["seconds"] = round(time.monotonic() - clock, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gateway-{args.backend}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    stem.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
