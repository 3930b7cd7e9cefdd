"""``rempart demo`` as a user runs it: it starts on the embedded default with a
synthetic clinic, answers a token-authenticated read, its background traffic reaches
the audit trail, it stops cleanly on SIGINT and SIGTERM, and a second run does not
import again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from conftest import free_port
from rempart.config import Settings, StorageSettings
from rempart.storage.open_audit import open_audit_store


def _start(data: Path, port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "rempart.cli", "demo", "--data-dir", str(data)]
    cmd += ["--port", str(port), "--patients", "20", "--traffic-rate", "5"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the demo did not start")


def _stop(process: subprocess.Popen[str], sig: signal.Signals) -> str:
    process.send_signal(sig)
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 0, out
    return out


def _token(data: Path, port: int) -> str:
    cmd = [sys.executable, "-m", "rempart.cli", "token", "--client-id", "demo-backend"]
    cmd += ["--kid", "demo-1", "--key-file", str(data / "demo" / "demo-backend.pem")]
    cmd += ["--scope", "system/*.rs", "--url", f"http://127.0.0.1:{port}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def _traffic(data: Path, at_least: int) -> list[dict[str, object]]:
    log = data / "demo" / "traffic.ndjson"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [orjson.loads(x) for x in log.read_bytes().splitlines()] if log.exists() else []
        if sum(1 for line in lines if str(line["path"]).startswith("/fhir")) >= at_least:
            return lines
        time.sleep(0.2)
    raise AssertionError("no background traffic")


async def _audited(data: Path) -> set[str]:
    store = await open_audit_store(Settings(storage=StorageSettings(data_dir=data)), None, False)
    found = set()
    try:
        async for record in store.records():
            for entity in orjson.loads(record.body).get("entity", []):
                if entity.get("type", {}).get("code") == "XrequestId":
                    found.add(entity["what"]["identifier"]["value"])
    finally:
        await store.close()
    return found


def test_demo_serves_simulates_and_stops(tmp_path: Path) -> None:
    data, port = tmp_path / "rempart-data", free_port()
    process = _start(data, port)
    try:
        answer = httpx.get(
            f"http://127.0.0.1:{port}/fhir/Patient?_count=1",
            headers={"authorization": f"Bearer {_token(data, port)}"},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["entry"]
        lines = _traffic(data, 5)
    finally:
        out = _stop(process, signal.SIGINT)
    assert "Generated a clinic of 20 patients" in out and "demo.clinician" in out
    assert not [line for line in lines if int(str(line["status"])) >= 500]
    answered = {str(line["request_id"]) for line in lines if line["status"] != 0}
    assert answered <= asyncio.run(_audited(data))
    again = _start(data, free_port())
    out = _stop(again, signal.SIGTERM)
    assert "already imported" in out
    assert os.stat(data / "simulator" / "accounts.json").st_mode & 0o077 == 0
