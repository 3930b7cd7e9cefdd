"""Rempart's foundation benchmark: create, read and vread under concurrent load.

One command (see bench/README.md)::

    .venv/bin/python bench/run.py [--duration 10] [--connections 32]
        [--backends sqlite,postgres] [--workers 1,2]

For each worker count and backend: a fresh store, Rempart started, 1,000 resources
preloaded, then read, vread, the baseline's read of the same rows, and create,
each measured with wrk after a warm-up. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cpu
import loadgen
import preload
import report
import servers

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BUSY_WARNING_PCT = 10.0
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ensure_wrk()
    load = loadgen.Load(args.connections, args.duration, args.warmup)
    started, clock = datetime.now(UTC), time.monotonic()
    rows: list[dict[str, Any]] = []
    failures = []
    for workers in args.workers:
        for backend in args.backends:
            idle_busy = cpu.wait_quiet(BUSY_WARNING_PCT, args.wait_quiet)
            print(f"== {backend}, {workers} worker(s); CPU busy before: {idle_busy}%", flush=True)
            if idle_busy > BUSY_WARNING_PCT:
                print("!! the machine is busy with other work: results will be skewed", flush=True)
            try:
                rows += [
                    {**row, "background_cpu_pct": idle_busy}
                    for row in run_backend(backend, workers, load, args)
                ]
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"!! {backend} workers={workers} failed: {exc}", file=sys.stderr)
                failures.append({"backend": backend, "workers": workers, "error": str(exc)[:500]})
    document = _document(args, started, time.monotonic() - clock, rows, failures)
    json_path, md_path = report.write(document, args.out)
    print(report.markdown(document))
    print(f"Wrote {json_path} and {md_path}")
    return 1 if failures else 0


def run_backend(
    backend: str, workers: int, load: loadgen.Load, args: argparse.Namespace
) -> list[dict[str, Any]]:
    storage = servers.fresh_storage(backend, args.database)
    started: list[servers.Server] = []
    try:
        rempart = servers.start_rempart(storage, workers)
        started.append(rempart)
        ids = preload.preload(rempart.port, args.preload, headers=rempart.headers)
        inputs = _inputs(storage.data_dir, ids)
        _smoke(rempart, inputs)
        tag = {"backend": backend, "workers": workers}
        rows = [_measure(rempart, op, inputs, load, tag) for op in ("read", "vread")]
        baseline = servers.start_baseline(storage, workers)
        started.append(baseline)
        _expect(baseline, "GET", _first_path(inputs["read"]), 200)
        rows.append(_measure(baseline, "read", inputs, load, tag))
        baseline.stop()
        rows.append(_measure(rempart, "create", inputs, load, tag))
        return rows
    except (RuntimeError, OSError):
        for server in started:
            print(f"-- {server.name} log:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        for server in started:
            server.stop()
        storage.drop()


def _measure(
    server: servers.Server,
    op: str,
    inputs: dict[str, Path],
    load: loadgen.Load,
    tag: dict[str, Any],
) -> dict[str, Any]:
    lua = loadgen.script("create" if op == "create" else "read", inputs["dir"])
    url = f"http://{servers.HOST}:{server.port}"
    result = loadgen.measure(url, lua, inputs[op], load, server.process.pid, server.headers)
    server.check_alive()
    row = {**tag, "server": server.name, "operation": op, **result}
    print(
        f"   {server.name:8} {op:6} {row['rps']:>9,.0f} req/s  p50 {row['p50_ms']:.2f}  "
        f"p99 {row['p99_ms']:.2f} ms  errors {row['errors_status']}/{row['errors_socket']}  "
        f"server CPU {row['server_cpu_pct_of_one_core']:.0f}%",
        flush=True,
    )
    return row


def _inputs(workdir: Path, ids: list[tuple[str, str]]) -> dict[str, Path]:
    return {
        "dir": workdir,
        "read": preload.write_lines(workdir / "read.txt", [f"/fhir/{t}/{i}" for t, i in ids]),
        "vread": preload.write_lines(
            workdir / "vread.txt", [f"/fhir/{t}/{i}/_history/1" for t, i in ids]
        ),
        "create": preload.write_lines(workdir / "create.txt", preload.create_bodies(ids)),
    }


def _smoke(server: servers.Server, inputs: dict[str, Path]) -> None:
    """One request of each kind must succeed before any load is put on the server."""
    _expect(server, "GET", _first_path(inputs["read"]), 200)
    _expect(server, "GET", _first_path(inputs["vread"]), 200)
    type_, body = inputs["create"].read_text(encoding="utf-8").splitlines()[0].split("\t", 1)
    _expect(server, "POST", f"/fhir/{type_}", 201, body.encode())


def _expect(
    server: servers.Server, method: str, path: str, status: int, body: bytes | None = None
) -> None:
    conn = http.client.HTTPConnection(servers.HOST, server.port, timeout=10)
    try:
        headers = {"Content-Type": "application/fhir+json", **server.headers}
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        text = response.read()[:300]
    finally:
        conn.close()
    if response.status != status:
        raise RuntimeError(
            f"{method} {path} answered {response.status}, expected {status}: {text!r}"
        )


def _first_path(path: Path) -> str:
    return path.read_text().splitlines()[0]


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk not found: running `apt-get update` and `apt-get install -y wrk`", flush=True)
    subprocess.run(["apt-get", "update"], check=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, timeout=300)


def _document(
    args: argparse.Namespace,
    started: datetime,
    elapsed: float,
    rows: list[dict[str, Any]],
    failures: list[dict[str, Any]],
) -> dict[str, Any]:
    settings = {
        "command": " ".join(["python", *sys.argv]),
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "wrk_threads": 1,
        "preload": args.preload,
        "backends": args.backends,
        "workers": args.workers,
        "uvicorn_flags": servers.uvicorn_impl_flags(),
        "pool_size": servers.POOL_SIZE,
    }
    return {
        "date": started.isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 1),
        "environment": report.environment(args.database if "postgres" in args.backends else None),
        "settings": settings,
        "results": rows,
        "verdicts": report.verdicts(rows),
        "reference": report.MEDPLUM,
        "failures": failures,
    }


def _csv(kind: type) -> Any:
    return lambda text: [kind(part) for part in text.split(",") if part]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds measured per run (default 10)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent connections (default 32)"
    )
    parser.add_argument(
        "--backends",
        type=_csv(str),
        default=["sqlite", "postgres"],
        help="comma-separated: sqlite,postgres",
    )
    parser.add_argument(
        "--workers",
        type=_csv(int),
        default=[1, 2],
        help="comma-separated worker counts (default 1,2)",
    )
    parser.add_argument(
        "--preload", type=int, default=1000, help="resources loaded before read/vread"
    )
    parser.add_argument(
        "--database", default=DEFAULT_PG, help="PostgreSQL URL (a fresh schema is used)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        help="seconds to wait, before each backend, for other work to leave the CPU (default 60)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return parser


if __name__ == "__main__":
    sys.exit(main())
