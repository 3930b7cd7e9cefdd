"""The traffic simulator against a real server: real logins (SMART app launch with
password, TOTP, consent and PKCE; backend services for the lab), requests that
succeed, a log that joins the audit trail by request id, clinicians who stay with
the patients in their care, a labelled attack, and departed interns locked out."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from conftest import ServerProcess
from rempart.cli.main import main
from rempart.config import RateLimitSettings, Settings, StorageSettings
from rempart.storage.open_audit import open_audit_store
from rempart.surveillance.simulator.accounts import register
from rempart.surveillance.simulator.actors import cast
from rempart.surveillance.simulator.http import Http, LoginRefused, Stamp
from rempart.surveillance.simulator.runner import Bounds
from rempart.surveillance.simulator.simulation import Options, simulate
from rempart.surveillance.simulator.world import load_world


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hospital")
    assert main(["synth", "--patients", "10", "--seed", "3", "--out", str(out)]) == 0
    return out


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, hospital: Path
) -> Iterator[ServerProcess]:
    """One server per backend for the module, the hospital imported."""
    data = tmp_path_factory.mktemp("served") / "data"
    storage = StorageSettings(data_dir=data)
    schema = None
    if request.param == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        schema = f"rempart_test_{secrets.token_hex(6)}"
        storage = StorageSettings(
            data_dir=data, database_url=pg_url, postgres_schema=schema, pool_size=4
        )
    settings = Settings(storage=storage, ratelimit=RateLimitSettings(enabled=False))
    server = ServerProcess(settings).start()
    try:
        _import(storage, hospital)
        yield server
    finally:
        server.kill()
        if schema is not None:
            with psycopg.connect(str(storage.database_url), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                conn.execute(f"DROP SCHEMA IF EXISTS {schema}_audit CASCADE")


def _import(storage: StorageSettings, hospital: Path) -> None:
    args = ["import", "--data-dir", str(storage.data_dir)]
    args += ["--database", storage.database_url] if storage.database_url else []
    before = os.environ.get("REMPART_PG_SCHEMA")
    os.environ["REMPART_PG_SCHEMA"] = storage.postgres_schema  # the settings main() loads
    try:
        assert main([*args, *map(str, sorted(hospital.glob("*.ndjson")))]) == 0
    finally:
        if before is None:
            del os.environ["REMPART_PG_SCHEMA"]
        else:
            os.environ["REMPART_PG_SCHEMA"] = before


def _simulate(server: ServerProcess, hospital: Path, log: Path, **changes: Any) -> Any:
    options = Options(
        f"http://127.0.0.1:{server.port}",
        hospital,
        seed=changes.pop("seed", 4),
        bounds=Bounds(duration=40, requests=changes.pop("requests", 60), concurrency=4),
        log=log,
        **changes,
    )
    return asyncio.run(simulate(server.settings, options))


def _lines(log: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


async def _audited_request_ids(settings: Settings) -> set[str]:
    store = await open_audit_store(settings, None, create=False)
    found: set[str] = set()
    try:
        async for record in store.records():
            event = orjson.loads(record.body)
            for entity in event.get("entity", []):
                if entity.get("type", {}).get("code") == "XrequestId":
                    found.add(entity["what"]["identifier"]["value"])
    finally:
        await store.close()
    return found


def test_simulated_traffic_is_real_labelled_and_audited(
    served: ServerProcess, hospital: Path, tmp_path: Path
) -> None:
    log = tmp_path / "traffic.ndjson"
    summary = _simulate(served, hospital, log, attacks=("mass-browsing",))
    lines = _lines(log)
    assert summary.actions == 60 and summary.logins >= 3 and summary.refused_logins == 0
    assert {line["status"] for line in lines} <= {200, 201, 303}, [
        line for line in lines if line["status"] not in (200, 201, 303)
    ]
    logins = [line for line in lines if line["scenario"] == "login"]
    assert {line["path"] for line in logins} >= {"/auth/authorize", "/auth/login", "/auth/token"}
    # The log joins the audit trail: every request id it holds was audited.
    audited = asyncio.run(_audited_request_ids(served.settings))
    assert {line["request_id"] for line in lines} <= audited
    world = load_world(hospital)
    people = {actor.name: actor for actor in cast(world).clinicians}
    clinical = [line for line in lines if line["role"] in ("physician", "nurse", "intern")]
    normal = [line for line in clinical if line["label"] == "normal" and line["patient"]]
    assert normal, "no clinician traffic"
    assert all(line["patient"] in people[line["actor"]].care for line in normal)
    attack = [line for line in lines if line["label"] == "mass-browsing" and line["patient"]]
    assert attack, "the attack produced no request"
    assert all(line["patient"] not in people[line["actor"]].care for line in attack)
    assert {line["scenario"] for line in lines} >= {"clinical-reading", "mass-browsing"}


def test_a_departed_intern_cannot_log_in(served: ServerProcess, hospital: Path) -> None:
    world = load_world(hospital)
    people = cast(world)
    assert people.departed, "the roster has interns who left"
    assert not {a.name for a in people.departed} & {a.name for a in people.active()}
    keyring = asyncio.run(register(served.settings, people, world.reference))
    intern = people.departed[0]
    seen: list[int] = []

    async def attempt() -> None:
        http = Http(f"http://127.0.0.1:{served.port}", lambda *a: seen.append(a[3]))
        stamp = Stamp(intern, "login", "departed-intern", world.reference_moment())
        try:
            with pytest.raises(LoginRefused):
                await http.login(stamp, keyring.users[intern.name], keyring.scopes(intern))
        finally:
            await http.close()

    asyncio.run(attempt())
    assert 303 not in seen  # never reached the consent page's redirect
