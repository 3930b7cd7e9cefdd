"""Drive wrk: one warm-up, then one measured run, parsed from the Lua ``done`` hook.

wrk runs with one thread (``-t1``): the machine has two cores shared with the
server, and one wrk thread is enough to keep 32 connections busy at these rates.
``headers`` (Rempart's bearer token) are given with ``-H``: wrk puts them in
``wrk.headers``, which ``wrk.format`` in the Lua scripts' ``init`` adds to every request.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cpu

LUA_DIR = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class Load:
    """What wrk is asked to do."""

    connections: int
    duration: int
    warmup: int
    timeout: str = "5s"


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found (apt-get install -y wrk)")
    return path


def script(kind: str, workdir: Path) -> Path:
    """The operation's script with the shared reporting hook appended."""
    text = (LUA_DIR / f"{kind}.lua").read_text() + "\n" + (LUA_DIR / "report.lua").read_text()
    path = workdir / f"{kind}-with-report.lua"
    path.write_text(text)
    return path


def measure(
    url: str,
    lua: Path,
    data: Path,
    load: Load,
    server_pid: int,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    if load.warmup > 0:
        _wrk(url, lua, data, load, load.warmup, headers)
    before = cpu.sample(server_pid)
    result = _wrk(url, lua, data, load, load.duration, headers)
    return {**summarise(result), **cpu.usage(before, cpu.sample(server_pid))}


def _wrk(
    url: str, lua: Path, data: Path, load: Load, seconds: int, headers: dict[str, str] | None
) -> dict[str, Any]:
    argv = wrk_argv(url, lua, data, load.connections, seconds, load.timeout, headers)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return parse_report(done.stdout, f"exit {done.returncode}: {done.stderr}")


def wrk_argv(
    url: str,
    lua: Path,
    data: Path,
    connections: int,
    seconds: int,
    timeout: str = "5s",
    headers: dict[str, str] | None = None,
) -> list[str]:
    header_args = [
        arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")
    ]
    return [wrk_binary(), "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}",
            *header_args, "-s", str(lua), url, "--", str(data)]  # fmt: skip


def parse_report(stdout: str, context: str = "") -> dict[str, Any]:
    """The JSON line printed by lua/report.lua."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            parsed: dict[str, Any] = json.loads(line.removeprefix(MARKER))
            return parsed
    raise RuntimeError(f"wrk gave no report ({context}):\n{stdout}")


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    lat = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors_status": errors["status"],
        "errors_socket": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "errors_detail": errors,
        "kb_per_request": round(raw["bytes"] / max(raw["requests"], 1) / 1024, 2),
    }
