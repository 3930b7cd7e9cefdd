"""CPU time of a process tree and of the whole machine, read from /proc (Linux).

Says where the two cores went during a measured run: the server's processes, and
everything (wrk, PostgreSQL backends) in the machine total.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    wall: float
    tree_seconds: float
    machine_busy: float
    machine_total: float


def sample(pid: int) -> Sample:
    busy, total = _machine()
    return Sample(time.monotonic(), sum(_cpu_seconds(p) for p in _tree(pid)), busy, total)


def usage(before: Sample, after: Sample) -> dict[str, float]:
    """Server CPU in % of one core, machine CPU in % of all cores."""
    wall = after.wall - before.wall
    total = after.machine_total - before.machine_total
    return {
        "server_cpu_pct_of_one_core": round(
            100 * (after.tree_seconds - before.tree_seconds) / wall, 1
        ),
        "machine_cpu_pct": round(100 * (after.machine_busy - before.machine_busy) / total, 1),
    }


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return pids


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _machine() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def background_busy_pct(seconds: float = 1.0) -> float:
    """Machine CPU in use while nothing of the benchmark runs: other work skews results."""
    before = _machine()
    time.sleep(seconds)
    after = _machine()
    return round(100 * (after[0] - before[0]) / max(after[1] - before[1], 1), 1)


def wait_quiet(limit_pct: float, max_seconds: float) -> float:
    """Wait, at most ``max_seconds``, for the machine to be busy under ``limit_pct``."""
    deadline = time.monotonic() + max_seconds
    busy = background_busy_pct()
    while busy > limit_pct and time.monotonic() < deadline:
        busy = background_busy_pct()
    return busy
