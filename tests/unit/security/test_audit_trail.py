"""The audit trail when its store fails: 503 up front, one retry a second, the outage
recorded with the events of the requests that ran meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from rempart.errors import Category, RempartError
from rempart.security.audit import trail as trail_module
from rempart.security.audit.records import Checkpoint
from rempart.security.audit.trail import AuditTrail


class FlakySink:
    """Appends fail while ``down``; ``gate`` (when set) holds each append until released."""

    def __init__(self) -> None:
        self.down = False
        self.appended: list[Mapping[str, Any]] = []
        self.calls = 0
        self.checkpoints = 0
        self.gate: asyncio.Event | None = None
        self.failing: set[str] = set()
        """Ids of events whose append fails at once, whatever ``down`` and ``gate`` say."""

    async def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        self.calls += 1
        if any(e.get("id") in self.failing for e in events):
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable")
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable")
        self.appended += events
        return list(range(len(self.appended) - len(events) + 1, len(self.appended) + 1))

    async def checkpoint(self) -> Checkpoint:
        self.checkpoints += 1
        return Checkpoint(len(self.appended), b"", "", b"")

    async def close(self) -> None:
        return None


def event(name: str) -> dict[str, str]:
    return {"resourceType": "AuditEvent", "id": name}


def refused(error: pytest.ExceptionInfo[RempartError]) -> bool:
    return error.value.category is Category.UNAVAILABLE


def test_the_outage_is_recorded_before_the_events_of_the_requests_that_ran() -> None:
    async def scenario() -> None:
        sink = FlakySink()
        trail = AuditTrail(sink, checkpoint_seconds=0)
        await trail.record([event("before")])
        sink.down = True
        with pytest.raises(RempartError) as failed:
            await trail.record([event("ran-1"), event("ran-2")])
        assert refused(failed)
        with pytest.raises(RempartError) as up_front:
            await trail.admit()  # within the second: refused without trying
        assert refused(up_front) and sink.calls == 2
        sink.down = False
        trail._last_try -= trail_module.RETRY_SECONDS  # a second later
        await trail.admit()
        assert [e.get("id") for e in sink.appended] == ["before", None, "ran-1", "ran-2"]
        outage = sink.appended[1]
        assert outage["subtype"][0]["code"] == "audit-outage"
        assert "2 requests refused" in outage["outcomeDesc"]
        assert "the 2 events after this one" in outage["outcomeDesc"]
        await trail.admit()  # up again: nothing more is appended
        assert len(sink.appended) == 4

    asyncio.run(scenario())


def test_one_retry_at_a_time() -> None:
    """A retry that waits (SQLite's busy_timeout) is not joined by another one."""

    async def scenario() -> None:
        sink = FlakySink()
        trail = AuditTrail(sink, checkpoint_seconds=0)
        sink.down = True
        with pytest.raises(RempartError):
            await trail.record([event("ran")])
        sink.gate = asyncio.Event()
        trail._last_try -= trail_module.RETRY_SECONDS
        first = asyncio.create_task(trail.admit())
        await asyncio.sleep(0)
        trail._last_try -= trail_module.RETRY_SECONDS  # the first try outlasts a second
        with pytest.raises(RempartError):
            await trail.admit()
        assert sink.calls == 2  # the failed record, then the one retry
        sink.down = False
        sink.gate.set()
        await first
        assert [e.get("id") for e in sink.appended] == [None, "ran"]

    asyncio.run(scenario())


def test_events_that_failed_during_the_retry_are_written_after_it() -> None:
    async def scenario() -> None:
        sink = FlakySink()
        trail = AuditTrail(sink, checkpoint_seconds=0)
        sink.down = True
        with pytest.raises(RempartError):
            await trail.record([event("ran")])
        sink.down, sink.gate = False, asyncio.Event()
        trail._last_try -= trail_module.RETRY_SECONDS
        retry = asyncio.create_task(trail.admit())
        await asyncio.sleep(0)
        sink.failing = {"in-flight"}  # admitted before the outage, fails meanwhile
        with pytest.raises(RempartError):
            await trail.record([event("in-flight")])
        sink.failing = set()
        sink.gate.set()
        await retry
        assert [e.get("id") for e in sink.appended] == [None, "ran", "in-flight"]

    asyncio.run(scenario())


def test_a_failing_store_refuses_then_recovers_with_an_outage_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(trail_module.time, "monotonic", lambda: clock[0])
    sink = FlakySink()
    trail = AuditTrail(sink, 0)

    async def scenario() -> None:
        await trail.admit()
        await trail.record([{"n": 1}])
        sink.down = True
        with pytest.raises(RempartError):
            await trail.record([{"n": 2}])
        for _ in range(3):  # within the second: refused without touching the store
            with pytest.raises(RempartError) as refused:
                await trail.admit()
            assert refused.value.category is Category.UNAVAILABLE
        clock[0] += 1.5
        with pytest.raises(RempartError):  # retried, still down
            await trail.admit()
        sink.down = False
        clock[0] += 1.5
        await trail.admit()  # retried, the outage event is written, service resumes
        await trail.admit()
        await trail.close()

    asyncio.run(scenario())
    *_, outage, kept = sink.appended
    assert outage["subtype"][0]["code"] == "audit-outage"
    assert "5 requests refused" in outage["outcomeDesc"]
    assert kept == {"n": 2}  # the request that ran while the store failed
    assert sink.checkpoints == 1  # the last one, at close


def test_an_event_the_store_refuses_does_not_block_the_trail_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(trail_module.time, "monotonic", lambda: clock[0])
    sink = FlakySink()
    sink.failing = {"poison"}  # refused whatever happens, as PostgreSQL refused a NUL
    trail = AuditTrail(sink, 0)

    async def scenario() -> None:
        with pytest.raises(RempartError):
            await trail.record([{"id": "poison"}])
        clock[0] += 1.5
        await trail.admit()  # the kept event is refused again; the outage event alone is not
        await trail.record([{"n": 3}])

    asyncio.run(scenario())
    outage, after = sink.appended
    assert outage["subtype"][0]["code"] == "audit-outage"
    assert "the 0 events after this one" in outage["outcomeDesc"]
    assert "1 more such events could not be kept or written" in outage["outcomeDesc"]
    assert after == {"n": 3}
