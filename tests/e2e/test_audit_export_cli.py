"""``rempart audit export``, ``purge`` and ``verify`` as real processes, on the audit
trail a real server wrote (SQLite file and PostgreSQL schema): everything exported,
then purged, the chain still proven from its anchor, and the anchor's removal caught."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg

from conftest import ServerProcess
from rempart.config import Settings


def rempart(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "rempart.cli", "audit", *args]
    cmd += ["--data-dir", str(settings.storage.data_dir)]
    if settings.storage.database_url:
        cmd += ["--database", settings.storage.database_url]
    full_env = {**os.environ, "REMPART_PG_SCHEMA": settings.storage.postgres_schema, **env}
    done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def traffic(settings: Settings) -> None:
    """A few answered requests, then the server stops (signing a last checkpoint)."""
    server = ServerProcess(settings).start()
    try:
        with httpx.Client(base_url=server.base, headers=server.headers) as http:
            created = http.post("/Patient", json={"resourceType": "Patient", "active": True})
            assert created.status_code == 201
            assert http.get(created.headers["location"].split("/_history")[0]).status_code == 200
            assert http.get("/Patient", params={"active": "true"}).status_code == 200
        bad = httpx.get(f"{server.base}/Patient", headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401
    finally:
        server.stop()


def delete_checkpoint(settings: Settings, count: int) -> None:
    sql = "DELETE FROM audit_checkpoint WHERE count = ?"
    if settings.storage.database_url is None:
        with sqlite3.connect(settings.storage.data_dir / "audit.db") as conn:
            conn.execute(sql, (count,))
        conn.close()
        return
    schema = f"{settings.storage.postgres_schema}_audit"
    with psycopg.connect(settings.storage.database_url, options=f"-c search_path={schema}") as conn:
        conn.execute(sql.replace("?", "%s"), (count,))


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_purge_verify_on_a_served_trail(settings: Settings, tmp_path: Path) -> None:
    traffic(settings)
    out = tmp_path / "siem.jsonl"
    code, stdout, stderr = rempart(settings, "export", "--since-last", "siem", "--output", str(out))
    assert (code, stderr) == (0, "")
    exported = read_lines(out)
    count = len(exported)
    assert count >= 4 and [line["seq"] for line in exported] == list(range(1, count + 1))
    assert json.loads(stdout) == {"exported": count, "first": 1, "last": count}
    assert {"create", "read", "search-type"} <= {e["subtype"][0]["code"] for e in exported}

    code, stdout, _ = rempart(settings, "purge", "--export-name", "siem")
    assert code == 0 and json.loads(stdout)["purged"] == 0  # younger than the retention
    code, stdout, stderr = rempart(
        settings, "purge", "--export-name", "siem", REMPART_AUDIT_RETENTION_DAYS="0"
    )
    assert (code, stderr) == (0, "")
    assert json.loads(stdout) == {
        "purged": count, "first": 1, "through": count, "event": count + 1
    }  # fmt: skip

    code, stdout, _ = rempart(settings, "verify")
    assert (code, json.loads(stdout)["ok"], json.loads(stdout)["first"]) == (0, True, count + 1)

    code, _, _ = rempart(settings, "export", "--since-last", "siem", "--output", str(out))
    removal = read_lines(out)[count:]
    assert code == 0 and [line["seq"] for line in removal] == [count + 1]
    assert removal[0]["subtype"][0]["code"] == "audit-purge"
    assert removal[0]["outcomeDesc"].startswith(f"audit records 1 to {count} removed")

    delete_checkpoint(settings, count)  # the anchor
    code, stdout, _ = rempart(settings, "verify")
    verdict = json.loads(stdout)
    assert (code, verdict["ok"]) == (1, False)
    assert (
        f"no signed checkpoint of {count} records anchors record {count + 1}" in verdict["reason"]
    )
