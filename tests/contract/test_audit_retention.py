"""Export marks and purge, against every audit store adapter (SQLite, PostgreSQL):
JSON lines equal to the stored records, incremental exports, marks that never pass what
a destination acknowledged, and a purge that leaves a chain ``verify`` accepts."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from rempart.errors import RempartError
from rempart.security.audit.checkpoints import CheckpointSigner, load_public_key
from rempart.security.audit.export import BATCH, JsonLines, export_records
from rempart.security.audit.ports import AuditStore
from rempart.security.audit.records import StoredRecord, canonical
from rempart.security.audit.retention import cutoff, purge_expired
from rempart.security.audit.verify import Verdict, verify
from rempart.storage.postgres.audit import open_postgres_audit
from rempart.storage.sqlite.audit import open_sqlite_audit

NOW = datetime.now(UTC)
OLD = (NOW - timedelta(days=400)).isoformat()
NEW = NOW.isoformat()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, keys: Path
) -> AsyncIterator[AuditStore]:
    signer = CheckpointSigner.open(keys)
    opened: AuditStore
    if request.param == "sqlite":
        opened = open_sqlite_audit(tmp_path / "data" / "audit.db", signer)
    else:
        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        opened = await open_postgres_audit(url, schema, signer)
    yield opened
    await opened.close()


def event(n: int, recorded: str = OLD) -> dict[str, object]:
    return {"resourceType": "AuditEvent", "id": str(n), "recorded": recorded, "outcome": "0"}


async def verdict(store: AuditStore, keys: Path) -> Verdict:
    checkpoints = await store.checkpoints()
    records = [record async for record in store.records()]
    return verify(records, checkpoints, load_public_key(keys / "audit-signing.pub"))


def lines(stream: io.BytesIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.anyio
async def test_json_lines_are_the_stored_records_with_seq_and_hash(store: AuditStore) -> None:
    await store.append_many([event(n) for n in range(3)])
    out = io.BytesIO()
    done = await export_records(store, JsonLines(out, sync=False), None, None)
    stored = [record async for record in store.records()]
    assert (done.count, done.first, done.last) == (3, 1, 3)
    for line, record in zip(lines(out), stored, strict=True):
        assert (line.pop("seq"), line.pop("hash")) == (record.seq, record.hash.hex())
        assert canonical(line) == record.body  # a SIEM can recompute the chain
    assert await store.export_mark("siem") is None  # no name, no mark


@pytest.mark.anyio
async def test_a_named_export_sends_only_what_is_new(store: AuditStore) -> None:
    await store.append_many([event(n) for n in range(3)])
    first, second, third = io.BytesIO(), io.BytesIO(), io.BytesIO()
    await export_records(store, JsonLines(first, sync=False), None, "siem")
    await store.append_many([event(3), event(4)])
    await export_records(store, JsonLines(second, sync=False), None, "siem")
    await export_records(store, JsonLines(third, sync=False), None, "siem")
    assert [line["seq"] for line in lines(first)] == [1, 2, 3]
    assert [line["seq"] for line in lines(second)] == [4, 5]
    assert third.getvalue() == b""
    assert await store.export_mark("siem") == 5
    assert await store.export_mark("other") is None
    await store.mark_exported("siem", 2)  # a mark never moves back
    assert await store.export_mark("siem") == 5


class Failing:
    """A destination that acknowledges ``batches`` batches, then breaks."""

    def __init__(self, batches: int) -> None:
        self.batches, self.sent = batches, 0

    def send(self, records: Sequence[StoredRecord]) -> None:
        if self.batches == 0:
            raise ConnectionResetError("the SIEM went away")
        self.batches -= 1
        self.sent += len(records)

    def close(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_failed_export_marks_only_what_was_acknowledged(store: AuditStore) -> None:
    await store.append_many([event(n) for n in range(BATCH + 10)])
    with pytest.raises(RempartError, match="failed after record 500 was written"):
        await export_records(store, Failing(1), None, "siem")
    assert await store.export_mark("siem") == BATCH
    with pytest.raises(RempartError, match="before any record"):
        await export_records(store, Failing(0), None, "siem")
    assert await store.export_mark("siem") == BATCH
    rest = Failing(5)
    await export_records(store, rest, None, "siem")
    assert (rest.sent, await store.export_mark("siem")) == (10, BATCH + 10)


@pytest.mark.anyio
async def test_a_purge_removes_old_exported_records_and_stays_provable(
    store: AuditStore, keys: Path
) -> None:
    await store.append_many([event(n) for n in range(8)] + [event(8, NEW), event(9, NEW)])
    await store.checkpoint()
    await store.mark_exported("siem", 9)
    purged = await purge_expired(store, cutoff(NOW, 30, None), "siem")
    assert purged is not None and (purged.first, purged.through, purged.event_seq) == (1, 8, 11)
    stored = [record async for record in store.records()]
    assert [r.seq for r in stored] == [9, 10, 11]
    removal = orjson.loads(stored[-1].body)
    assert removal["subtype"] == [{"system": "urn:rempart:audit-subtype", "code": "audit-purge"}]
    assert removal["outcomeDesc"].startswith("audit records 1 to 8 removed")
    assert purged.head_hash.hex() in removal["outcomeDesc"]
    counts = [c.count for c in await store.checkpoints()]
    assert counts == [8, 10, 11]  # the anchor, the earlier one, the one after the event
    assert await verdict(store, keys) == Verdict(True, None, "the chain holds", 3, 3, first=9)


@pytest.mark.anyio
async def test_records_not_exported_are_kept(store: AuditStore, keys: Path) -> None:
    await store.append_many([event(n) for n in range(6)])
    before = cutoff(NOW, 30, None)
    assert await purge_expired(store, before, "siem") is None  # never exported: nothing goes
    await store.mark_exported("siem", 2)
    purged = await purge_expired(store, before, "siem")
    assert purged is not None and (purged.first, purged.through) == (1, 2)
    assert [r.seq async for r in store.records()][:1] == [3]
    purged = await purge_expired(store, before, None)  # --unexported-too
    assert purged is not None and (purged.first, purged.through) == (3, 6)
    assert [r.seq async for r in store.records()] == [7, 8]  # the two removal events: recent
    assert (await verdict(store, keys)).ok


@pytest.mark.anyio
async def test_purging_through_a_missing_record_is_refused(store: AuditStore) -> None:
    await store.append_many([event(0)])
    with pytest.raises(RempartError, match="No record 5 to purge through"):
        await store.purge(5, lambda first, through, head: event(99))
    assert [r.seq async for r in store.records()] == [1]
    assert await store.checkpoints() == []


def test_before_may_only_be_stricter_than_the_retention() -> None:
    now = datetime(2026, 6, 15, 12, tzinfo=UTC)
    assert cutoff(now, 10, None) == datetime(2026, 6, 5, 12, tzinfo=UTC)
    assert cutoff(now, 10, datetime(2026, 6, 1).date()) == datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(RempartError, match="later than the retention allows"):
        cutoff(now, 10, datetime(2026, 6, 6).date())
    with pytest.raises(RempartError, match="cannot be negative"):
        cutoff(now, -1, None)
