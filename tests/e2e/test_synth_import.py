"""``rempart synth`` then ``rempart import`` into a real store: the data is served,
bad lines are reported and skipped, and an import killed part-way resumes without
redoing what it had committed."""

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
import pytest

from conftest import ServerProcess
from rempart.cli.main import main
from rempart.config import RateLimitSettings, Settings, StorageSettings
from rempart.storage.open import open_store
from rempart.storage.ports import HistoryQuery


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    unlimited = RateLimitSettings(enabled=False)
    storage = StorageSettings(data_dir=tmp_path / "data")
    if request.param == "postgres":
        storage = StorageSettings(
            data_dir=tmp_path / "data",
            database_url=request.getfixturevalue("pg_url"),
            postgres_schema=request.getfixturevalue("pg_schema"),
            pool_size=4,
        )
    return Settings(storage=storage, ratelimit=unlimited)


@pytest.fixture(scope="module")
def clinic_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clinic (40 patients, about 1,700 resources; patient 11 is a VIP)."""
    out = tmp_path_factory.mktemp("clinic")
    assert main(["synth", "--patients", "40", "--seed", "5", "--out", str(out)]) == 0
    return out


def _args(settings: Settings) -> list[str]:
    args = ["--data-dir", str(settings.storage.data_dir)]
    return args + (
        ["--database", settings.storage.database_url] if settings.storage.database_url else []
    )


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "REMPART_PG_SCHEMA": settings.storage.postgres_schema}


def _resources(folder: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for f in sorted(folder.glob("*.ndjson"))
        for line in f.read_bytes().splitlines()
    ]


def _versions(settings: Settings, keys: list[tuple[str, str]]) -> list[int | None]:
    """The current version number of each resource, None when absent."""

    async def read() -> list[int | None]:
        store = await open_store(settings)
        try:
            found = [await store.read(type_, id_) for type_, id_ in keys]
        finally:
            await store.close()
        return [None if v is None or v.deleted else v.version for v in found]

    return asyncio.run(read())


def test_an_imported_clinic_is_served(
    backend: Settings, clinic_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMPART_PG_SCHEMA", backend.storage.postgres_schema)
    files = [str(f) for f in sorted(clinic_files.glob("*.ndjson"))]
    assert main(["import", *_args(backend), *files]) == 0
    server = ServerProcess(backend).start()
    try:
        headers = server.headers
        patient = httpx.get(f"{server.base}/Patient/h5-pat-0", headers=headers, timeout=10)
        assert patient.status_code == 200 and patient.json()["name"][0]["family"]
        bundle = httpx.get(
            f"{server.base}/Observation",
            params={"subject": "Patient/h5-pat-0", "code": "http://loinc.org|8867-4"},
            headers=headers,
            timeout=10,
        ).json()
        assert bundle["resourceType"] == "Bundle" and bundle.get("entry")
        vip = httpx.get(f"{server.base}/Patient/h5-pat-11", headers=headers, timeout=10).json()
        assert vip["meta"]["security"][0]["code"] == "V"
    finally:
        server.stop()


def test_bad_lines_are_reported_and_skipped_and_the_rest_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(storage=StorageSettings(data_dir=tmp_path / "data"))
    good = {"resourceType": "Patient", "id": "good-1", "gender": "female"}
    unnamed = {"resourceType": "Observation", "status": "final", "code": {"text": "note"}}
    lines = [
        orjson.dumps(good),
        b"{not json",
        orjson.dumps({"resourceType": "Patient", "id": "bad-2", "gender": "robot"}),
        orjson.dumps({"resourceType": "Nonsense", "id": "x"}),
        b"",
        orjson.dumps(unnamed),
    ]
    source = tmp_path / "mixed.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["import", *_args(settings), str(source)]) == 1
    err = capsys.readouterr().err
    for line in (2, 3, 4):
        assert f"{source}:{line}: " in err
    assert f"{source}:1:" not in err and f"{source}:6:" not in err
    assert _versions(settings, [("Patient", "good-1"), ("Patient", "bad-2")]) == [1, None]
    assert main(["import", *_args(settings), str(source)]) == 1  # done: not loaded again
    observations = asyncio.run(_history(settings, "Observation"))
    assert observations == 1


async def _history(settings: Settings, type_: str) -> int:
    store = await open_store(settings)
    try:
        return len(await store.history(HistoryQuery(type=type_, count=1000)))
    finally:
        await store.close()


def test_a_json_file_not_a_bundle_is_rejected_and_usage_errors_exit_2(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(data_dir=tmp_path / "data"))
    (tmp_path / "x.json").write_text("[]")
    assert main(["import", *_args(settings), str(tmp_path / "x.json")]) == 1
    with pytest.raises(SystemExit) as usage:
        main(["import", *_args(settings)])
    assert usage.value.code == 2
    assert main(["import", *_args(settings), str(tmp_path / "missing.ndjson")]) == 2


def test_transaction_bundles_import_twice_without_duplicates(
    backend: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMPART_PG_SCHEMA", backend.storage.postgres_schema)
    out = tmp_path / "bundles"
    assert (
        main(
            [
                "synth",
                "--patients",
                "5",
                "--format",
                "bundles",
                "--bundle-entries",
                "100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    files = [str(f) for f in sorted(out.glob("bundle-*.json"))]
    assert main(["import", *_args(backend), *files]) == 0
    keys = [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for f in files
        for e in orjson.loads(Path(f).read_bytes())["entry"]
    ]
    assert set(_versions(backend, keys)) == {1}


def test_an_import_killed_part_way_resumes_without_redoing_committed_batches(
    backend: Settings, clinic_files: Path
) -> None:
    files = [str(f) for f in sorted(clinic_files.glob("*.ndjson"))]
    command = [
        sys.executable,
        "-m",
        "rempart.cli",
        "import",
        "--batch",
        "25",
        *_args(backend),
        *files,
    ]
    journal = backend.storage.data_dir / "import-progress.json"
    process = subprocess.Popen(
        command, env=_env(backend), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        _wait_for_committed_batches(journal, process, at_least=100)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    committed = sum(int(s["loaded"]) for s in orjson.loads(journal.read_bytes()).values())
    assert 0 < committed < len(_resources(clinic_files))
    rerun = subprocess.run(
        command, env=_env(backend), capture_output=True, timeout=120, check=False
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    keys = [(str(r["resourceType"]), str(r["id"])) for r in _resources(clinic_files)]
    versions = _versions(backend, keys)
    assert None not in versions
    # At most the one batch committed but not yet journaled when killed is written twice.
    assert sum(1 for v in versions if v != 1) <= 25


def _wait_for_committed_batches(
    journal: Path, process: subprocess.Popen[bytes], at_least: int
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the import finished before it could be killed"
        if journal.exists():
            try:
                states = orjson.loads(journal.read_bytes())
            except orjson.JSONDecodeError:
                states = {}
            if sum(int(s["loaded"]) for s in states.values()) >= at_least:
                return
        time.sleep(0.005)
    raise AssertionError("no batch committed within 60 s")
