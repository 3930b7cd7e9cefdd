"""The results: ``foundation.json`` (everything measured) and ``foundation.md`` (the table)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

TARGET_READ_RATIO = 0.5
TARGET_READ_P99_MS = 10.0
MEDPLUM = (
    "Medplum, measured on this machine kind with wrk -t1 -c32: "
    "read 2,629 req/s (p99 34 ms), create 409 req/s (p99 126 ms)."
)


def environment(pg_url: str | None) -> dict[str, Any]:
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "commit": _git("rev-parse", "HEAD"),
        "worktree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "wrk": (_first_line(["wrk", "--version"]) or "wrk ?").split(" [")[0],
        "postgresql": _pg_version(pg_url) if pg_url else None,
    }


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backend and worker count: Rempart read against the baseline and the targets."""
    out = []
    for backend, workers in dict.fromkeys((r["backend"], r["workers"]) for r in rows):
        read = _find(rows, backend, workers, "rempart", "read")
        base = _find(rows, backend, workers, "baseline", "read")
        if read is None or base is None:
            continue
        ratio = read["rps"] / base["rps"] if base["rps"] else 0.0
        out.append(
            {
                "backend": backend,
                "workers": workers,
                "read_vs_baseline": round(ratio, 3),
                "ratio_ok": ratio >= TARGET_READ_RATIO,
                "read_p99_ms": read["p99_ms"],
                "p99_ok": read["p99_ms"] < TARGET_READ_P99_MS,
            }
        )
    return out


def write(document: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "foundation.json", out_dir / "foundation.md"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(document))
    return json_path, md_path


def markdown(doc: dict[str, Any]) -> str:
    env, settings = doc["environment"], doc["settings"]
    machine = env["machine"]
    dirty = " (work tree has uncommitted changes)" if env["worktree_dirty"] else ""
    lines = [
        "# Rempart foundation benchmark",
        "",
        f"- Date: {doc['date']}",
        f"- Machine: {machine['nproc']} cores, {machine['cpu_model']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}",
        f"- Commit: `{env['commit']}`{dirty}",
        f"- Settings: {settings['connections']} connections, wrk -t1, "
        f"{settings['duration']} s measured after {settings['warmup']} s warm-up, "
        f"{settings['preload']} preloaded resources, "
        f"uvicorn {' '.join(settings['uvicorn_flags']) or 'defaults'}; {env['wrk']}; "
        f"PostgreSQL: {env['postgresql'] or 'n/a'}",
        f"- Command: `{settings['command']}`",
        "",
        *_results_table(doc["results"]),
        "",
        "Errors: HTTP status ≥ 400 as counted by wrk / socket errors (connect, read, write, "
        "timeout). Server CPU: the server's process tree, in % of one core. Machine CPU: both "
        "cores (wrk and PostgreSQL included). Busy before: machine CPU in use during the second "
        "before that backend's runs; above 10% other work was running and skews the numbers.",
        "",
        "## Targets",
        "",
        *_targets_table(doc["verdicts"]),
        "",
        f"Reference: {MEDPLUM}",
        "",
    ]
    for failure in doc.get("failures", []):
        lines.append(
            f"- FAILED {failure['backend']} workers={failure['workers']}: {failure['error']}"
        )
    return "\n".join(lines) + "\n"


def _results_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | workers | server | operation | req/s | p50 ms | p95 ms | p99 ms | errors "
        "(status / socket) | server CPU (% of 1 core) | machine CPU | busy before |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['workers']} | {r['server']} | {r['operation']} "
            f"| {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['errors_status']} / {r['errors_socket']} "
            f"| {r['server_cpu_pct_of_one_core']:.0f}% | {r['machine_cpu_pct']:.0f}% "
            f"| {r.get('background_cpu_pct', 0):.0f}% |"
        )
    return lines


def _targets_table(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | workers | Rempart read / baseline read (target ≥ 50%) "
        "| read p99 (target < 10 ms) |",
        "|---|---:|---:|---:|",
    ]
    for v in verdicts:
        ratio = f"{100 * v['read_vs_baseline']:.0f}% {'PASS' if v['ratio_ok'] else 'FAIL'}"
        p99 = f"{v['read_p99_ms']:.2f} ms {'PASS' if v['p99_ok'] else 'FAIL'}"
        lines.append(f"| {v['backend']} | {v['workers']} | {ratio} | {p99} |")
    return lines


def _find(rows: list[dict[str, Any]], backend: str, workers: int, server: str, op: str) -> Any:
    for r in rows:
        if (r["backend"], r["workers"], r["server"], r["operation"]) == (
            backend,
            workers,
            server,
            op,
        ):
            return r
    return None


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    return _first_line(["git", "-C", str(root), *args]) or ""


def _first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def _pg_version(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return f"{row[0]}" if row else None
