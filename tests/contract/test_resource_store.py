"""The storage port's contract, run against every adapter (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.storage.open import open_keyring, open_store
from rempart.storage.ports import HistoryQuery, ResourceStore, WriteRequest

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def body(text: str) -> Callable[[int, datetime], bytes]:
    return lambda version, moment: f'{{"v":{version},"t":"{text}"}}'.encode()


def put(type_: str, id_: str, text: str, expected: int | None = None) -> WriteRequest:
    return WriteRequest(type_, id_, body(text), expected_version=expected)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ResourceStore]:
    opened = await open_store(settings)
    yield opened
    await opened.close()


async def test_versions_count_up_and_bodies_round_trip(store: ResourceStore) -> None:
    first = await store.write(put("Patient", "a", "one"))
    second = await store.write(put("Patient", "a", "two"))
    assert (first.created, second.created) == (True, False)
    latest = await store.read("Patient", "a")
    assert latest is not None and latest.version == 2
    assert latest.body == b'{"v":2,"t":"two"}'
    old = await store.vread("Patient", "a", 1)
    assert old is not None and old.body == b'{"v":1,"t":"one"}'
    assert second.version is not None and first.version is not None
    assert second.version.last_updated > first.version.last_updated


async def test_missing_resources_and_versions(store: ResourceStore) -> None:
    assert await store.read("Patient", "nobody") is None
    await store.write(put("Patient", "a", "one"))
    assert await store.vread("Patient", "a", 7) is None
    assert await store.read("Observation", "a") is None


async def test_create_only_refuses_an_existing_id(store: ResourceStore) -> None:
    await store.write(put("Patient", "a", "one"))
    with pytest.raises(RempartError) as caught:
        await store.write(WriteRequest("Patient", "a", body("x"), create_only=True))
    assert caught.value.category is Category.CONFLICT


async def test_if_match_is_checked_inside_the_write(store: ResourceStore) -> None:
    await store.write(put("Patient", "a", "one"))
    with pytest.raises(RempartError) as caught:
        await store.write(put("Patient", "a", "two", expected=5))
    assert caught.value.category is Category.PRECONDITION_FAILED
    result = await store.write(put("Patient", "a", "two", expected=1))
    assert result.version is not None and result.version.version == 2


async def test_delete_records_a_marker_and_is_idempotent(store: ResourceStore) -> None:
    await store.write(put("Patient", "a", "one"))
    deleted = await store.write(WriteRequest("Patient", "a", None))
    assert deleted.changed and deleted.version is not None and deleted.version.deleted
    again = await store.write(WriteRequest("Patient", "a", None))
    assert not again.changed
    nothing = await store.write(WriteRequest("Patient", "never", None))
    assert not nothing.changed and nothing.version is None
    latest = await store.read("Patient", "a")
    assert latest is not None and latest.deleted and latest.version == 2
    revived = await store.write(put("Patient", "a", "back"))
    assert revived.created and revived.version is not None and revived.version.version == 3


async def test_history_filters_and_pages(store: ResourceStore) -> None:
    for n in range(5):
        await store.write(put("Patient", f"p{n}", "x"))
    await store.write(put("Observation", "o", "x"))
    await store.write(put("Patient", "p0", "y"))
    everything = await store.history(HistoryQuery(count=100))
    assert len(everything) == 7
    assert [v.seq for v in everything] == sorted((v.seq for v in everything), reverse=True)
    patients = await store.history(HistoryQuery(type="Patient", count=100))
    assert {v.type for v in patients} == {"Patient"} and len(patients) == 6
    instance = await store.history(HistoryQuery(type="Patient", id="p0", count=100))
    assert [v.version for v in instance] == [2, 1]
    page1 = await store.history(HistoryQuery(type="Patient", count=4))
    page2 = await store.history(HistoryQuery(type="Patient", count=4, before_seq=page1[-1].seq))
    assert len(page1) == 4 and len(page2) == 2
    assert not {v.seq for v in page1} & {v.seq for v in page2}


async def test_history_since_and_at(store: ResourceStore) -> None:
    first = await store.write(put("Patient", "a", "one"))
    assert first.version is not None
    await asyncio.sleep(0.01)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await store.write(put("Patient", "a", "two"))
    since = await store.history(HistoryQuery(type="Patient", since=middle, count=10))
    assert [v.version for v in since] == [2]
    at_middle = await store.history(HistoryQuery(at=(middle, middle + timedelta(microseconds=1))))
    assert [v.version for v in at_middle] == [1]
    before = first.version.last_updated - timedelta(seconds=1)
    assert await store.history(HistoryQuery(at=(before, before + timedelta(milliseconds=1)))) == []


async def test_concurrent_writers_never_share_a_version(store: ResourceStore) -> None:
    results = await asyncio.gather(*(store.write(put("Patient", "hot", str(n))) for n in range(20)))
    versions = sorted(r.version.version for r in results if r.version is not None)
    assert versions == list(range(1, 21))


async def test_rewrap_moves_every_row_to_the_active_key(settings: Settings) -> None:
    ring = open_keyring(settings)
    store = await open_store(settings, ring)
    try:
        for n in range(7):
            await store.write(put("Patient", f"p{n}", "secret"))
        await store.write(WriteRequest("Patient", "p0", None))
        ring.rotate()
        assert await store.rewrap(batch=3) == 7
        assert await store.rewrap() == 0
        latest = await store.read("Patient", "p3")
        assert latest is not None and latest.body == b'{"v":1,"t":"secret"}'
    finally:
        await store.close()
