"""The audit search index, run against every adapter (SQLite, PostgreSQL): written with
the records, filtered by date and keys, paged in both orders, totals exact; the chain
still verifies."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from rempart.security.audit.checkpoints import CheckpointSigner, load_public_key
from rempart.security.audit.index import recorded_micros
from rempart.security.audit.ports import AuditQuery, AuditStore
from rempart.security.audit.verify import verify
from rempart.storage.postgres.audit import open_postgres_audit
from rempart.storage.sqlite.audit import open_sqlite_audit

DAY = 86_400_000_000
SINCE = recorded_micros("2026-11-01T00:00:00Z")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditStore]:
    keys = tmp_path / "keys"
    opened: AuditStore
    if request.param == "sqlite":
        opened = open_sqlite_audit(tmp_path / "audit.db", CheckpointSigner.open(keys))
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        opened = await open_postgres_audit(url, schema, CheckpointSigner.open(keys))
    yield opened
    await opened.close()


def event(n: int, patient: str | None, client: str, subtype: str, outcome: str) -> dict[str, Any]:
    """The n-th event: minute n of 2026-11-01 (and later days past 1440)."""
    hours, minutes = divmod(n, 60)
    days, hours = divmod(hours, 24)
    entity: list[dict[str, Any]] = [
        {"what": {"reference": f"Observation/o{n}/_history/1"}, "type": {"code": "2"}},
        {"what": {"identifier": {"value": f"req-{n}"}}, "type": {"code": "XrequestId"}},
    ]
    if patient:
        entity.append({"what": {"reference": f"Patient/{patient}"}, "type": {"code": "1"}})
    return {
        "resourceType": "AuditEvent",
        "type": {"code": "rest"},
        "subtype": [{"code": subtype}],
        "action": "R" if subtype == "read" else "E",
        "recorded": f"2026-11-{1 + days:02d}T{hours:02d}:{minutes:02d}:00.000000Z",
        "outcome": outcome,
        "agent": [{"who": {"identifier": {"value": client}}}],
        "entity": entity,
    }


EVENTS = [
    event(n, ("p1", "p2", None)[n % 3], ("a", "b")[n % 2], ("read", "search-type")[n % 5 == 0],
          ("0", "4")[n % 7 == 0])
    for n in range(1, 61)
] + [{"resourceType": "AuditEvent", "type": {"code": "audit-outage"}}]  # fmt: skip


async def fill(store: AuditStore) -> None:
    await store.append_many(EVENTS[:25])
    await store.append_many(EVENTS[25:])


def query(**filters: Any) -> AuditQuery:
    return AuditQuery(since=SINCE, until=SINCE + DAY, **filters)


def expected(predicate: Any) -> list[int]:
    return [seq for seq, e in enumerate(EVENTS[:60], start=1) if predicate(e)]


async def all_pages(store: AuditStore, q: AuditQuery) -> list[int]:
    seqs: list[int] = []
    while True:
        page = await store.search(q)
        seqs += [hit.seq for hit in page.hits]
        if not page.more:
            return seqs
        last = page.hits[-1]
        q = AuditQuery(**{**q.__dict__, "after": (last.recorded, last.seq)})


@pytest.mark.anyio
async def test_filters_select_exactly_the_matching_records(store: AuditStore) -> None:
    await fill(store)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, lambda e: True),
        ({"patient": ("p1",)}, lambda e: "Patient/p1" in str(e["entity"])),
        ({"patient": ("p1", "p2")}, lambda e: "Patient/p" in str(e["entity"])),
        ({"agent": ("a",)}, lambda e: e["agent"][0]["who"]["identifier"]["value"] == "a"),
        ({"subtype": ("search-type",)}, lambda e: e["subtype"][0]["code"] == "search-type"),
        ({"outcome": ("4",), "agent": ("b",)},
         lambda e: e["outcome"] == "4" and e["agent"][0]["who"]["identifier"]["value"] == "b"),
        ({"entity": ("Observation/o7",)}, lambda e: "o7/" in str(e["entity"])),
        ({"entity": ("Observation/o7/_history/1",)}, lambda e: "o7/" in str(e["entity"])),
        ({"action": ("E",), "patient": ("p2",), "type": ("rest",)},
         lambda e: e["action"] == "E" and "Patient/p2" in str(e["entity"])),
    ]  # fmt: skip
    for filters, predicate in cases:
        want = expected(predicate)
        page = await store.search(query(count=100, with_total=True, newest_first=False, **filters))
        assert [hit.seq for hit in page.hits] == want, filters
        assert page.total == len(want) and not page.more
        newest = await store.search(query(count=100, **filters))
        assert [hit.seq for hit in newest.hits] == want[::-1]
        assert newest.total is None


@pytest.mark.anyio
async def test_the_date_range_is_half_open_and_bodies_are_the_stored_ones(
    store: AuditStore,
) -> None:
    await fill(store)
    minute = 60_000_000
    page = await store.search(
        AuditQuery(since=SINCE + 10 * minute, until=SINCE + 20 * minute, newest_first=False)
    )
    assert [hit.seq for hit in page.hits] == list(range(10, 20))
    assert orjson.loads(page.hits[0].body) == EVENTS[9]
    assert await store.event(10) == page.hits[0].body
    assert await store.event(999) is None
    outage = await store.search(AuditQuery(since=0, until=1, with_total=True))
    assert [hit.seq for hit in outage.hits] == [61]  # no recorded time: indexed at 0


@pytest.mark.anyio
async def test_paging_visits_each_record_once_in_both_orders(store: AuditStore) -> None:
    await fill(store)
    want = expected(lambda e: "Patient/p1" in str(e["entity"]))
    assert await all_pages(store, query(patient=("p1",), count=3, newest_first=False)) == want
    assert await all_pages(store, query(patient=("p1",), count=3)) == want[::-1]
    assert await all_pages(store, query(count=7)) == list(range(60, 0, -1))


@pytest.mark.anyio
async def test_the_index_leaves_the_chain_as_it_was(store: AuditStore, tmp_path: Path) -> None:
    await fill(store)
    await store.checkpoint()
    records = [record async for record in store.records()]
    verdict = verify(
        records, await store.checkpoints(), load_public_key(tmp_path / "keys" / "audit-signing.pub")
    )
    assert verdict.ok and len(records) == len(EVENTS)


@pytest.mark.anyio
async def test_a_store_written_before_the_index_is_indexed_at_open(
    store: AuditStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await fill(store)
    await store.close()
    await forget_index(request, tmp_path)
    keys = tmp_path / "keys"
    if "postgres" in request.node.callspec.id:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        reader = await open_postgres_audit(url, schema, None)
        assert (await reader.search(query())).hits == []  # a reader (verify) indexes nothing
        await reader.close()
        reopened: AuditStore = await open_postgres_audit(url, schema, CheckpointSigner.open(keys))
    else:
        reader_sqlite = open_sqlite_audit(tmp_path / "audit.db", None)
        assert (await reader_sqlite.search(query())).hits == []
        await reader_sqlite.close()
        reopened = open_sqlite_audit(tmp_path / "audit.db", CheckpointSigner.open(keys))
    try:
        page = await reopened.search(query(count=100, patient=("p1",), with_total=True))
        assert page.total == len(expected(lambda e: "Patient/p1" in str(e["entity"])))
        await reopened.append_many([EVENTS[0]])
        assert (await reopened.search(query(count=100, with_total=True))).total == 61
    finally:
        await reopened.close()


async def forget_index(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Empty the index tables, as in a store from before them."""
    statements = ["DELETE FROM audit_ref", "DELETE FROM audit_index"]
    if "postgres" in request.node.callspec.id:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for sql in statements:
                await conn.execute(sql.replace("FROM ", f"FROM {schema}_audit."))
        return
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


@pytest.mark.anyio
async def test_a_nul_a_caller_put_in_a_name_does_not_stop_the_audit(store: AuditStore) -> None:
    """A path or a claimed client id may hold NUL; PostgreSQL text cannot (the fuzz tests
    found that it made every append fail, refusing service with 503)."""
    hostile = event(1, "p1", "evil\x00client", "read", "4")
    hostile["entity"][0]["what"]["reference"] = "Patient/\x00"
    [seq] = await store.append_many([hostile])
    page = await store.search(query(agent=("evil\ufffdclient",)))
    assert [hit.seq for hit in page.hits] == [seq]
    assert b"evil\\u0000client" in page.hits[0].body  # the record keeps what was sent
