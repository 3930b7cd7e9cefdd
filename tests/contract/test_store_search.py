"""The storage port's transactional writes, guards and index-driven search, run against
every adapter (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.fhir.search.parse import parse_search
from rempart.fhir.search.query import SearchQuery
from rempart.storage.open import open_store
from rempart.storage.ports import (
    HistoryQuery,
    Render,
    ResourceStore,
    SearchRequest,
    WriteRequest,
    now_micros,
    to_micros,
)

pytestmark = pytest.mark.anyio

SYS = "http://hospital.example/mrn"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ResourceStore]:
    opened = await open_store(settings)
    yield opened
    await opened.close()


def patient_body(id_: str, mrn: str) -> Render:
    def render(version: int, moment: datetime) -> bytes:
        resource = {
            "resourceType": "Patient",
            "id": id_,
            "meta": {"versionId": str(version), "lastUpdated": moment.isoformat()},
            "identifier": [{"system": SYS, "value": mrn}],
        }
        return json.dumps(resource).encode()

    return render


def put(id_: str, mrn: str, **options: object) -> WriteRequest:
    return WriteRequest("Patient", id_, patient_body(id_, mrn), **options)  # type: ignore[arg-type]


def by_mrn(mrn: str) -> SearchQuery:
    return parse_search(("Patient",), [("identifier", f"{SYS}|{mrn}")])


async def found(store: ResourceStore, mrn: str, as_of: int | None = None) -> list[str]:
    result = await store.search(SearchRequest(by_mrn(mrn), as_of=as_of or now_micros()))
    return sorted(version.id for version in result.matches)


async def test_write_all_is_all_or_nothing(store: ResourceStore) -> None:
    await store.write(put("taken", "0"))
    batch = [put("a", "1"), put("b", "2"), put("taken", "3", create_only=True)]
    with pytest.raises(RempartError) as caught:
        await store.write_all(batch)
    assert caught.value.category is Category.CONFLICT
    assert await store.read("Patient", "a") is None
    assert await store.read("Patient", "b") is None
    assert await found(store, "1") == []
    everything = await store.history(HistoryQuery(count=100))
    assert [(v.id, v.version) for v in everything] == [("taken", 1)]


async def test_write_all_applies_in_order(store: ResourceStore) -> None:
    results = await store.write_all(
        [put("a", "1"), put("a", "2"), WriteRequest("Patient", "b", None)]
    )
    assert [r.version.version if r.version else None for r in results] == [1, 2, None]
    assert (results[0].created, results[1].created, results[2].changed) == (True, False, False)
    assert await found(store, "2") == ["a"] and await found(store, "1") == []


async def test_write_all_rolls_back_after_a_failed_if_match(store: ResourceStore) -> None:
    await store.write(put("a", "1"))
    with pytest.raises(RempartError) as caught:
        await store.write_all([put("b", "2"), put("a", "3", expected_version=4)])
    assert caught.value.category is Category.PRECONDITION_FAILED
    assert await store.read("Patient", "b") is None
    latest = await store.read("Patient", "a")
    assert latest is not None and latest.version == 1


async def test_guard_refuses_when_a_match_exists(store: ResourceStore) -> None:
    await store.write(put("a", "1"))
    with pytest.raises(RempartError) as caught:
        await store.write(put("b", "1", guard=by_mrn("1"), create_only=True))
    assert caught.value.category is Category.CONFLICT
    assert await store.read("Patient", "b") is None
    written = await store.write(put("c", "2", guard=by_mrn("2"), create_only=True))
    assert written.created and await found(store, "2") == ["c"]


async def test_guard_sees_earlier_writes_of_the_same_transaction(store: ResourceStore) -> None:
    with pytest.raises(RempartError) as caught:
        await store.write_all([put("a", "1"), put("b", "1", guard=by_mrn("1"))])
    assert caught.value.category is Category.CONFLICT
    assert await store.read("Patient", "a") is None


async def test_search_and_matching_follow_the_index(store: ResourceStore) -> None:
    await store.write_all([put("a", "1"), put("b", "1"), put("c", "2")])
    assert await found(store, "1") == ["a", "b"]
    assert await found(store, "2") == ["c"]
    assert await found(store, "9") == []
    assert sorted(await store.matching(by_mrn("1"), 5)) == [("Patient", "a"), ("Patient", "b")]
    assert len(await store.matching(by_mrn("1"), 1)) == 1
    await store.write(WriteRequest("Patient", "a", None))
    assert await found(store, "1") == ["b"]
    assert await store.matching(by_mrn("1"), 5) == [("Patient", "b")]


async def test_search_counts_the_total_when_asked(store: ResourceStore) -> None:
    await store.write_all([put(f"p{n}", "same") for n in range(3)])
    request = SearchRequest(by_mrn("same"), as_of=now_micros(), with_total=True)
    result = await store.search(request)
    assert result.total == 3 and len(result.matches) == 3


async def test_search_as_of_sees_a_snapshot(store: ResourceStore) -> None:
    first = await store.write(put("a", "old"))
    assert first.version is not None
    before_update = to_micros(first.version.last_updated)
    await store.write(put("a", "new"))
    assert await found(store, "old") == []
    assert await found(store, "new") == ["a"]
    assert await found(store, "old", as_of=before_update) == ["a"]
    assert await found(store, "new", as_of=before_update) == []
    snapshot = await store.search(SearchRequest(by_mrn("old"), as_of=before_update))
    assert [v.version for v in snapshot.matches] == [1]
    assert b'"old"' in (snapshot.matches[0].body or b"")
    assert await found(store, "old", as_of=before_update - 1) == []
