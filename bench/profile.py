"""Where a server's time goes under load: py-spy samples it while wrk drives it.

    .venv/bin/pip install py-spy   # once
    .venv/bin/python bench/profile.py [--backend sqlite] [--operation read]
        [--server rempart|baseline] [--seconds 8]

One worker, 32 connections, as in run.py. Writes the collapsed stacks to
``bench/results/profile-<server>-<backend>-<operation>.txt`` (for any flame graph
tool) and prints self time by function and by module, in % of samples and in
microseconds per request (from the request rate wrk measured while sampling).
Self time of a line that makes a system call includes the kernel's time for it.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

import loadgen
import preload
import servers
from run import DEFAULT_PG, RESULTS, _inputs

RATE = 250  # samples per second


def main() -> int:
    args = _parser().parse_args()
    if args.server == "baseline" and args.operation != "read":
        raise SystemExit("the baseline answers read only")
    storage = servers.fresh_storage(args.backend, DEFAULT_PG)
    started: list[servers.Server] = []
    try:
        started.append(servers.start_rempart(storage, workers=1))
        rempart = started[0]
        inputs = _inputs(
            storage.data_dir, preload.preload(rempart.port, 1000, headers=rempart.headers)
        )
        if args.server == "baseline":
            started.append(servers.start_baseline(storage, workers=1))
        out = RESULTS / f"profile-{args.server}-{args.backend}-{args.operation}.txt"
        rps = _record(started[-1], inputs, args, out)
        _summarise(out.read_text().splitlines(), args.top, rps, args.seconds)
    finally:
        for server in started:
            server.stop()
        storage.drop()
    return 0


def _record(
    server: servers.Server, inputs: dict[str, Path], args: argparse.Namespace, out: Path
) -> float:
    """Sample for ``args.seconds`` inside a wrk run that starts 2 s earlier; wrk's rate."""
    lua = loadgen.script("create" if args.operation == "create" else "read", inputs["dir"])
    url = f"http://{servers.HOST}:{server.port}"
    seconds = args.seconds + 3
    argv = loadgen.wrk_argv(url, lua, inputs[args.operation], 32, seconds, headers=server.headers)
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        spy = shutil.which("py-spy", path=str(servers.VENV_BIN)) or "py-spy"
        subprocess.run(
            [spy, "record", "--pid", str(server.process.pid), "--duration", str(args.seconds),
             "--rate", str(RATE), "--format", "raw", "--nonblocking", "--output", str(out)],
            check=True, timeout=args.seconds + 60, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        stdout, _ = wrk.communicate(timeout=seconds + 30)
    summary = loadgen.summarise(loadgen.parse_report(stdout))
    print(
        f"{server.name} {args.backend} {args.operation}: {summary['rps']:,.0f} req/s while sampled"
    )
    return float(summary["rps"])


def _summarise(stacks: list[str], top: int, rps: float, seconds: int) -> None:
    """Self time by function and by module. Coroutine stacks resumed by the event loop
    are sampled without their callers, so inclusive time would undercount; self time
    does not."""
    by_function: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    for line in stacks:
        stack, _, count = line.rpartition(" ")
        function, _, where = stack.split(";")[-1].partition(" (")
        module = where.rsplit(":", 1)[0]
        by_function[f"{function} ({module})"] += int(count)
        by_module[module or "?"] += int(count)
    total = sum(by_module.values())
    us_per_sample = 1e6 / RATE / (rps * seconds)  # one sample's time, shared by the requests
    print(f"{total} samples: {total * us_per_sample:.1f} µs of Python (on CPU) per request")
    for title, counter in (("function", by_function), ("module", by_module)):
        print(f"\n== self time by {title}, top {top}")
        for name, samples in counter.most_common(top):
            print(f"{100 * samples / total:5.1f}%  {samples * us_per_sample:6.2f} µs  {name}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--operation", choices=["read", "vread", "create"], default="read")
    parser.add_argument("--server", choices=["rempart", "baseline"], default="rempart")
    parser.add_argument("--seconds", type=int, default=8, help="seconds sampled")
    parser.add_argument("--top", type=int, default=25)
    return parser


if __name__ == "__main__":
    sys.exit(main())
