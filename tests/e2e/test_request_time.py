"""The request time limit: reads and searches are abandoned with 503 past it, writes
are never cut short (they could still commit), and every limit is configurable."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import bearer, mint_token
from rempart.config import (
    LimitSettings,
    RateLimitSettings,
    Settings,
    StorageSettings,
    load_settings,
)

FHIR = {"content-type": "application/fhir+json"}


def test_every_limit_comes_from_the_environment() -> None:
    env = {
        "REMPART_MAX_BODY_BYTES": "1000",
        "REMPART_DEFAULT_COUNT": "7",
        "REMPART_MAX_COUNT": "70",
        "REMPART_MAX_INCLUDED": "9",
        "REMPART_INCLUDE_DEPTH": "1",
        "REMPART_CHAIN_DEPTH": "2",
        "REMPART_MAX_BUNDLE_ENTRIES": "5",
        "REMPART_REQUEST_SECONDS": "2.5",
    }
    assert load_settings(env).limits == LimitSettings(1000, 7, 70, 9, 1, 2, 5, 2.5)
    assert load_settings({}).limits == LimitSettings()


@pytest.mark.postgres
def test_a_slow_read_is_abandoned_but_writes_are_not(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    """On PostgreSQL, where a read waits on the network (SQLite point reads finish
    without ever yielding, so there is nothing to cut short)."""
    from rempart.web import create_app

    storage = StorageSettings(
        data_dir=tmp_path / "data", database_url=pg_url, postgres_schema=pg_schema
    )
    settings = Settings(storage=storage, ratelimit=RateLimitSettings(enabled=False))
    hurried = replace(settings, limits=LimitSettings(request_seconds=0.0))
    with TestClient(create_app(hurried), base_url="http://127.0.0.1") as client:
        client.headers.update(bearer(mint_token(settings, "http://127.0.0.1/fhir")))
        body = json.dumps({"resourceType": "Patient", "id": "slow"})
        assert client.put("/fhir/Patient/slow", content=body, headers=FHIR).status_code == 201
        read = client.get("/fhir/Patient/slow")
        assert read.status_code == 503
        assert read.json()["issue"][0]["diagnostics"] == "The request took too long"
        assert read.headers["retry-after"] == "5"
        assert client.delete("/fhir/Patient/slow").status_code in (200, 204)
