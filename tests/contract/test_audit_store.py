"""The audit store's contract, run against every adapter (SQLite, PostgreSQL):
consecutive numbers, durable appends, one chain under concurrent writers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rempart.security.audit.checkpoints import CheckpointSigner, load_public_key
from rempart.security.audit.ports import AuditStore
from rempart.security.audit.records import GENESIS, StoredRecord, canonical
from rempart.security.audit.verify import Verdict, verify
from rempart.storage.postgres.audit import open_postgres_audit
from rempart.storage.sqlite.audit import open_sqlite_audit

Opener = Callable[[], Awaitable[AuditStore]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys"


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path, keys: Path) -> Opener:
    """Opens a store on one fresh database; each call is another instance on it."""
    if request.param == "sqlite":

        async def sqlite() -> AuditStore:
            return open_sqlite_audit(tmp_path / "data" / "audit.db", CheckpointSigner.open(keys))

        return sqlite
    url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    return lambda: open_postgres_audit(url, schema, CheckpointSigner.open(keys))


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[AuditStore]:
    opened = await opener()
    yield opened
    await opened.close()


def event(n: int, who: str = "t") -> dict[str, object]:
    return {"resourceType": "AuditEvent", "id": f"{who}-{n}", "action": "R", "outcome": "0"}


async def read_back(store: AuditStore, keys: Path) -> tuple[list[StoredRecord], Verdict]:
    checkpoints = await store.checkpoints()
    records = [record async for record in store.records()]
    return records, verify(records, checkpoints, load_public_key(keys / "audit-signing.pub"))


@pytest.mark.anyio
async def test_append_many_numbers_and_chains_consecutively(store: AuditStore, keys: Path) -> None:
    assert await store.append_many([event(1), event(2), event(3)]) == [1, 2, 3]
    assert await store.append_many([]) == []
    assert await store.append_many([event(4)]) == [4]
    records, verdict = await read_back(store, keys)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS
    assert records[2].body == canonical(event(3))
    assert verdict.ok and verdict.records == 4


@pytest.mark.anyio
async def test_checkpoint_signs_the_current_count_and_head(store: AuditStore, keys: Path) -> None:
    empty = await store.checkpoint()
    assert (empty.count, empty.head_hash) == (0, GENESIS)
    await store.append_many([event(n) for n in range(5)])
    checkpoint = await store.checkpoint()
    records, verdict = await read_back(store, keys)
    assert (checkpoint.count, checkpoint.head_hash) == (5, records[-1].hash)
    assert await store.checkpoints() == [empty, checkpoint]
    assert verdict == Verdict(True, None, "the chain holds", 5, 2)


@pytest.mark.anyio
async def test_appends_are_durable_across_reopening(opener: Opener, keys: Path) -> None:
    first = await opener()
    await first.append_many([event(n) for n in range(3)])
    await first.checkpoint()
    await first.close()
    second = await opener()
    try:
        assert await second.append_many([event(9)]) == [4]
        records, verdict = await read_back(second, keys)
        assert [r.body for r in records[:3]] == [canonical(event(n)) for n in range(3)]
        assert verdict.ok and (verdict.records, verdict.checkpoints) == (4, 1)
    finally:
        await second.close()


@pytest.mark.anyio
async def test_concurrent_tasks_form_one_chain(store: AuditStore, keys: Path) -> None:
    batches = await asyncio.gather(
        *(store.append_many([event(n, f"task{t}") for n in range(3)]) for t in range(20))
    )
    assert sorted(seq for batch in batches for seq in batch) == list(range(1, 61))
    assert all(batch == list(range(batch[0], batch[0] + 3)) for batch in batches)
    records, verdict = await read_back(store, keys)
    assert verdict.ok and verdict.records == 60
    for batch, t in zip(batches, range(20), strict=True):  # each caller's events, in order
        assert [records[s - 1].body for s in batch] == [
            canonical(event(n, f"task{t}")) for n in range(3)
        ]


@pytest.mark.anyio
async def test_checkpoints_signed_while_appends_run_all_finish(
    store: AuditStore, keys: Path
) -> None:
    """Signing shares the writer with the appends (on SQLite, its thread and lock):
    neither may wait for the other forever."""

    async def appends(t: int) -> None:
        for n in range(10):
            await store.append_many([event(n, f"task{t}")])

    async def checkpoints() -> None:
        for _ in range(10):
            await store.checkpoint()
            await asyncio.sleep(0)

    tasks = asyncio.gather(*(appends(t) for t in range(8)), checkpoints())
    await asyncio.wait_for(tasks, timeout=30)
    _, verdict = await read_back(store, keys)
    assert verdict.ok and verdict.records == 80


def test_two_instances_in_threads_form_one_chain(opener: Opener, keys: Path) -> None:
    """Two store instances on one database, each on its own thread and event loop (its
    own connections): the lock of the database, not of the instance, keeps one chain."""
    seqs: list[list[int]] = []

    async def writer(name: str) -> None:
        store = await opener()
        try:
            for round_ in range(15):
                batch = [event(n, f"{name}-{round_}") for n in range(4)]
                seqs.append(await store.append_many(batch))
                if round_ % 5 == 4:
                    await store.checkpoint()
        finally:
            await store.close()

    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(asyncio.run, writer(name)) for name in ("a", "b", "c")]
        for run in runs:
            run.result(timeout=60)  # re-raises what failed in the thread
    assert sorted(s for batch in seqs for s in batch) == list(range(1, 181))

    async def check() -> Verdict:
        store = await opener()
        try:
            return (await read_back(store, keys))[1]
        finally:
            await store.close()

    verdict = asyncio.run(check())
    assert verdict.ok and (verdict.records, verdict.checkpoints) == (180, 9)
