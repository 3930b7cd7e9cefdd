"""``bench/load.py`` end to end, briefly: a fresh server, the simulator's mix for a few
seconds, and the three result files (JSON, Markdown, PNG plot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LOAD = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def test_load_harness_writes_its_results(tmp_path: Path) -> None:
    cmd = [sys.executable, str(LOAD), "--patients", "10", "--duration", "3"]
    cmd += ["--concurrency", "4", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((tmp_path / "load-sqlite-1w.json").read_text())
    assert doc["requests"] > 20 and doc["rps"] > 0 and doc["errors"] == {}
    assert doc["p50_ms"] <= doc["p95_ms"] <= doc["p99_ms"]
    assert {"clinical-reading", "lab-results"} <= set(doc["scenarios"])
    assert "| requests | req/s |" in (tmp_path / "load-sqlite-1w.md").read_text()
    assert (tmp_path / "load-sqlite-1w.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
