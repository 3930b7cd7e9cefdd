"""The caller's reach inside the store, on every adapter: reads, versions, history,
search with includes, totals and conditional matching see only what is within reach,
and the latest version decides (an older version within reach never stands in)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pytest

from rempart.config import Settings
from rempart.fhir.search.parse import parse_search
from rempart.fhir.search.query import InCompartment
from rempart.storage.open import open_keyring, open_store
from rempart.storage.ports import (
    HistoryQuery,
    Reach,
    ResourceStore,
    SearchRequest,
    WriteRequest,
    now_micros,
)

ME = Reach((), others=True, others_where=InCompartment("Patient", "me"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ResourceStore]:
    opened = await open_store(settings, open_keyring(settings))
    try:
        yield opened
    finally:
        await opened.close()


def render(resource: dict[str, object]) -> Callable[[int, datetime], bytes]:
    def build(version: int, updated: datetime) -> bytes:
        meta = {"versionId": str(version), "lastUpdated": updated.isoformat()}
        return json.dumps({**resource, "meta": meta}).encode()

    return build


def observation(id_: str, patient: str) -> WriteRequest:
    body = {"resourceType": "Observation", "id": id_, "status": "final",
            "code": {"text": "x"}, "subject": {"reference": f"Patient/{patient}"}}  # fmt: skip
    return WriteRequest("Observation", id_, render(body))


async def seed(store: ResourceStore) -> None:
    for patient in ("me", "other"):
        body = {"resourceType": "Patient", "id": patient}
        await store.write(WriteRequest("Patient", patient, render(body)))
        await store.write(observation(f"obs-{patient}", patient))
    await store.write(observation("moved", "me"))
    await store.write(observation("moved", "other"))  # v2 leaves my compartment


@pytest.mark.anyio
async def test_reads_and_versions_within_reach(store: ResourceStore) -> None:
    await seed(store)
    assert (await store.read("Observation", "obs-me", ME)) is not None
    assert await store.read("Observation", "obs-other", ME) is None
    assert await store.read("Patient", "other", ME) is None
    assert (await store.read("Patient", "me", ME)) is not None
    # The latest version left the compartment: no older version is shown instead.
    assert await store.read("Observation", "moved", ME) is None
    assert (await store.vread("Observation", "moved", 1, ME)) is not None
    assert await store.vread("Observation", "moved", 2, ME) is None
    assert await store.read("Observation", "obs-other", Reach()) is None


@pytest.mark.anyio
async def test_history_search_includes_and_matching_within_reach(store: ResourceStore) -> None:
    await seed(store)
    history = await store.history(HistoryQuery(count=100, reach=ME))
    assert {(v.type, v.id, v.version) for v in history} == {
        ("Patient", "me", 1), ("Observation", "obs-me", 1), ("Observation", "moved", 1),
    }  # fmt: skip
    params = [("_revinclude", "Observation:subject"), ("_total", "accurate")]
    query = parse_search(("Patient",), params)
    found = await store.search(SearchRequest(query, now_micros(), with_total=True, reach=ME))
    assert [m.id for m in found.matches] == ["me"] and found.total == 1
    assert {v.id for v in found.included} == {"obs-me"}
    query = parse_search(("Observation",), [("_include", "Observation:subject")])
    found = await store.search(SearchRequest(query, now_micros(), reach=ME))
    assert {m.id for m in found.matches} == {"obs-me"}
    assert {v.id for v in found.included} == {"me"}
    by_subject = parse_search(("Observation",), [("subject", "Patient/other")])
    assert await store.matching(by_subject, 10, ME) == []
    assert await store.matching(by_subject, 10) != []
