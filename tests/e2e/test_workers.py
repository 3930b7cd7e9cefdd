"""Several worker processes on one fresh store: one key ring, one schema, one history."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from conftest import ServerProcess
from rempart.config import Settings
from rempart.storage.crypto import create_exclusive

FHIR = {"content-type": "application/fhir+json"}


def test_create_exclusive_keeps_the_first_content(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret"
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda n: create_exclusive(path, bytes([n]) * 32), range(8)))
    assert created.count(True) == 1
    assert path.read_bytes() == bytes([created.index(True)]) * 32
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["secret"]


def test_two_workers_on_fresh_storage_share_keys_and_data(settings: Settings) -> None:
    server = ServerProcess(settings, workers=2).start()
    try:
        with httpx.Client(base_url=server.base + "/", headers=server.headers, timeout=10) as http:

            def write(n: int) -> int:
                body = {"resourceType": "Patient", "id": f"w{n}", "active": True}
                return http.put(f"Patient/w{n}", content=json.dumps(body), headers=FHIR).status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(write, range(40))) == {201}
            # Reads land on either worker: each must open rows sealed by the other.
            for _ in range(3):
                with ThreadPoolExecutor(8) as pool:
                    codes = pool.map(lambda n: http.get(f"Patient/w{n}").status_code, range(40))
                    assert set(codes) == {200}
            history = http.get("Patient/_history?_count=100").json()
            assert len(history["entry"]) == 40
    finally:
        server.stop()
    ring = json.loads((settings.storage.data_dir / "keys" / "data-keys.json").read_text())
    assert list(ring["keys"]) == ["k1"]
