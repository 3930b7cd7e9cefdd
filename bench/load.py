"""Mixed load: the traffic simulator's mix (same plan, same actors, same scenarios)
replayed against a fresh server at a fixed rate or as fast as it goes.

One run: a fresh store (SQLite data directory, or a fresh PostgreSQL schema), a
synthetic hospital generated and imported (``--size clinic`` by default), ``rempart
serve --workers N`` on loopback, every simulated person logged in once through the
real flows (SMART app launch with password and TOTP, backend services for the lab;
not measured), then the plan's requests for ``--duration`` seconds or ``--requests``
actions with ``--concurrency`` in flight, at ``--rate`` per second (0: flat out).
Reported: throughput, latency p50/p95/p99 (ms), errors by status, per scenario, and a
PNG of latency over time. Results: ``bench/results/load-<backend>-<N>w.{json,md,png}``.

The load generator is Python (httpx, asyncio) on the same 2-core machine as the
server: at full speed it takes a share of the CPU the server would otherwise have.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import servers
from rempart.config import Settings, StorageSettings
from rempart.surveillance.simulator.accounts import register
from rempart.surveillance.simulator.actors import cast
from rempart.surveillance.simulator.http import Http, Stamp
from rempart.surveillance.simulator.plan import plan, scenarios
from rempart.surveillance.simulator.runner import Bounds, LabelledLog, Sessions, run
from rempart.surveillance.simulator.scenarios import Action
from rempart.surveillance.simulator.world import World, load_world
from rempart.synth.generator import PRESETS, Generator
from rempart.synth.output import write_ndjson

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Samples:
    """(seconds since the start, latency ms, status, scenario) of every measured request."""

    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[float, float, int, str]] = field(default_factory=list)
    measuring: bool = False

    def __call__(
        self, stamp: Stamp, method: str, path: str, status: int, request_id: str, ms: float
    ) -> None:
        if self.measuring and stamp.scenario != "login":
            self.rows.append((time.monotonic() - self.started, ms, status, stamp.scenario))


def prepare_hospital(storage: servers.Storage, patients: int, seed: int) -> Path:
    hospital = storage.data_dir / "hospital"
    write_ndjson(Generator(patients, seed=seed), hospital, lambda n: None)
    cmd = [str(servers.VENV_BIN / "rempart"), "import", "--data-dir", str(storage.data_dir)]
    env = dict(os.environ)
    if storage.pg_url:
        cmd += ["--database", storage.pg_url]
        env["REMPART_PG_SCHEMA"] = str(storage.schema)
    files = sorted(str(f) for f in hospital.glob("*.ndjson"))
    subprocess.run([*cmd, *files], env=env, check=True, capture_output=True)
    return hospital


def settings_of(storage: servers.Storage) -> Settings:
    if storage.pg_url:
        return Settings(
            storage=StorageSettings(
                data_dir=storage.data_dir,
                database_url=storage.pg_url,
                postgres_schema=str(storage.schema),
                pool_size=4,
            )
        )
    return Settings(storage=StorageSettings(data_dir=storage.data_dir))


async def drive(args: argparse.Namespace, settings: Settings, world: World, port: int) -> Samples:
    people = cast(world)
    keyring = await register(settings, people, world.reference)
    samples = Samples()
    http = Http(f"http://{servers.HOST}:{port}", samples)
    sessions = Sessions(http, keyring, LabelledLog(None), per_shift=False)
    try:
        start = world.reference_moment()
        for actor in people.active():  # everyone logs in once, before the clock starts
            await sessions.token(Action(start, actor, "login", "normal", "GET", ""))
        actions = plan(world, scenarios(world, people), args.seed)
        bounds = Bounds(args.duration, args.requests, args.concurrency, args.rate or None)
        samples.started, samples.measuring = time.monotonic(), True
        await run(http, sessions, actions, bounds)
        samples.measuring = False
        samples.rows.append((time.monotonic() - samples.started, -1.0, -1, "end"))
    finally:
        await http.close()
    return samples


def summarize(args: argparse.Namespace, samples: Samples, patients: int) -> dict[str, Any]:
    elapsed = samples.rows[-1][0]
    rows = [r for r in samples.rows if r[3] != "end"]
    latencies = sorted(r[1] for r in rows)
    errors: dict[str, int] = {}
    scenarios_seen: dict[str, int] = {}
    for _, _, status, scenario in rows:
        scenarios_seen[scenario] = scenarios_seen.get(scenario, 0) + 1
        if status >= 400 or status == 0:
            errors[str(status)] = errors.get(str(status), 0) + 1
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": args.backend,
        "workers": args.workers,
        "settings": {
            "patients": patients,
            "seed": args.seed,
            "rate": args.rate or "max",
            "concurrency": args.concurrency,
            "duration": args.duration,
            "requests": args.requests,
        },
        "nproc": os.cpu_count(),
        "requests": len(rows),
        "seconds": round(elapsed, 2),
        "rps": round(len(rows) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "errors": errors,
        "scenarios": scenarios_seen,
    }


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return round(ordered[index], 2)


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(doc["errors"].items())) or "none"
    mix = ", ".join(f"{k} {v}" for k, v in sorted(doc["scenarios"].items()))
    return "\n".join([
        f"# Mixed load ({doc['backend']}, {doc['workers']} worker(s), {doc['date']})", "",
        f"The simulator's mix on a synthetic hospital of {s['patients']} patients, rate "
        f"{s['rate']}, {s['concurrency']} in flight, {doc['seconds']} s, {doc['nproc']} CPUs "
        "shared by the server, the load generator (Python) and the database.", "",
        "| requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {doc['requests']:,} | {doc['rps']:,.1f} | {doc['p50_ms']} | {doc['p95_ms']} | "
        f"{doc['p99_ms']} | {errors} |", "",
        f"Mix: {mix}.", "",
    ])  # fmt: skip


def plot(samples: Samples, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in samples.rows if r[3] != "end"]
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=100)
    axes.scatter([r[0] for r in rows], [r[1] for r in rows], s=3, alpha=0.35, label="request")
    seconds, p50, p95 = _per_second(rows)
    axes.plot(seconds, p50, color="black", linewidth=1.2, label="p50 per second")
    axes.plot(seconds, p95, color="red", linewidth=1.2, label="p95 per second")
    axes.set_yscale("log")
    axes.set_xlabel("seconds")
    axes.set_ylabel("latency (ms)")
    axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _per_second(
    rows: list[tuple[float, float, int, str]],
) -> tuple[list[int], list[float], list[float]]:
    buckets: dict[int, list[float]] = {}
    for moment, ms, _, _ in rows:
        buckets.setdefault(int(moment), []).append(ms)
    seconds = sorted(buckets)
    p50 = [statistics.median(buckets[s]) for s in seconds]
    p95 = [sorted(buckets[s])[int(0.95 * (len(buckets[s]) - 1))] for s in seconds]
    return seconds, p50, p95


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--size", default="clinic", choices=sorted(PRESETS))
    parser.add_argument("--patients", type=int, help="instead of --size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0, help="actions per second; 0 flat out")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    patients = args.patients or PRESETS[args.size]
    storage = servers.fresh_storage(args.backend, args.database)
    server = None
    try:
        hospital = prepare_hospital(storage, patients, args.seed)
        server = servers.start_rempart(storage, args.workers)
        world = load_world(hospital)
        samples = asyncio.run(drive(args, settings_of(storage), world, server.port))
        server.check_alive()
    finally:
        if server is not None:
            server.stop()
        storage.drop()
    doc = summarize(args, samples, patients)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"load-{args.backend}-{args.workers}w"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(doc))
    plot(
        samples,
        f"Rempart mixed load, {args.backend}, {args.workers} worker(s)",
        stem.with_suffix(".png"),
    )
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
