"""The audit trail as the gateway uses it: append and wait, know when it is down,
sign checkpoints on a schedule.

An answer leaves only once its events are committed (``record``). When an append
fails, the trail is marked down and the gateway refuses requests with 503 instead of
serving them unaudited; at most once a second, one request tries again by appending
an event that says the store was unavailable, from when, and how many requests were
refused meanwhile. If that append succeeds, the trail is up again and the request
goes on.

A request whose events could not be committed had already run: a write it made stays
made (the audit store is not the resource store; no transaction spans both), though
its caller got a 503. So its events are kept in memory (up to :data:`KEPT`) and
appended right after the outage event: the chain tells what was done during the
outage, unless the process stops before the store is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rempart.errors import Category, RempartError
from rempart.security.audit.capture import SOURCE, SUBTYPES
from rempart.security.audit.ports import AuditSink

log = logging.getLogger("rempart.security")
RETRY_SECONDS = 1.0
KEPT = 10_000
"""Events of requests that ran while the store was failing, kept for when it is back."""


class AuditTrail:
    def __init__(self, sink: AuditSink, checkpoint_seconds: float) -> None:
        self._sink = sink
        self._checkpoint_seconds = checkpoint_seconds
        self._down_since: str | None = None
        self._refused = 0
        self._last_try = 0.0
        self._retrying = False
        self._unwritten: list[Mapping[str, Any]] = []
        self._lost = 0
        self._appended = False
        self._checkpointer: asyncio.Task[None] | None = None

    async def record(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append ``events`` and return once they are durable; raises 503 if not."""
        try:
            await self._sink.append_many(events)
        except RempartError:
            self._mark_down(events)
            raise
        except Exception as exc:  # e.g. an event no encoder takes: its group failed with it
            log.exception("audit append failed")
            self._mark_down(events)
            raise unavailable() from exc
        self._appended = True

    async def admit(self) -> None:
        """Raise 503 while the store is known to be down, except for one request a
        second, which appends the outage event and, if that works, goes on."""
        if self._down_since is None:
            return
        now = time.monotonic()
        if self._retrying or now - self._last_try < RETRY_SECONDS:
            self._refused += 1
            raise unavailable()
        self._last_try, self._retrying = now, True
        late = list(self._unwritten)
        try:  # one try at a time: a slow one (busy_timeout) must not be doubled
            await self._retry(late)
        except RempartError:
            self._refused += 1
            raise
        finally:
            self._retrying = False
        self._appended = True
        log.warning("audit store available again; %d requests were refused", self._refused)
        # Appends that failed while this one waited kept their events too: written next.
        rest = self._unwritten[len(late) :]
        self._down_since, self._refused, self._unwritten, self._lost = None, 0, [], 0
        if rest:
            await self.record(rest)

    async def _retry(self, late: list[Mapping[str, Any]]) -> None:
        """The outage event and the kept events; if the store refuses them but takes the
        outage event alone, one of the kept events was what it could not store (the store
        was never down): they are counted as lost rather than blocking the trail for
        good."""
        try:
            await self._sink.append_many([self._outage_event(len(late), self._lost), *late])
        except Exception:  # refused by the store or by its encoder: the same remedy
            if not late:
                raise
            await self._sink.append_many([self._outage_event(0, self._lost + len(late))])
            log.error("audit store refused %d kept events; recorded as lost", len(late))

    def _mark_down(self, events: Sequence[Mapping[str, Any]]) -> None:
        if self._down_since is None:
            self._down_since = _now()
            self._last_try = time.monotonic()
            log.error("audit store unavailable: requests are refused until it is back")
        self._refused += 1
        room = max(KEPT - len(self._unwritten), 0)
        self._unwritten += events[:room]
        self._lost += max(len(events) - room, 0)

    def _outage_event(self, kept: int, lost: int) -> dict[str, Any]:
        return {
            "resourceType": "AuditEvent",
            "type": {"system": SUBTYPES, "code": "audit-outage"},
            "subtype": [{"system": SUBTYPES, "code": "audit-outage"}],
            "action": "E",
            "recorded": _now(),
            "outcome": "8",
            "outcomeDesc": (
                f"audit store unavailable since {self._down_since}; "
                f"{self._refused} requests refused with 503; the {kept} "
                "events after this one are of requests that ran then and were answered 503"
                + (f"; {lost} more such events could not be kept or written" if lost else "")
            ),
            "agent": [{"who": {"display": "rempart"}, "requestor": False}],
            "source": SOURCE,
        }

    def start(self) -> None:
        """Sign a checkpoint every ``checkpoint_seconds`` in which records were added."""
        if self._checkpoint_seconds > 0:
            self._checkpointer = asyncio.create_task(self._checkpoints())

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_seconds)
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        if not self._appended:
            return
        self._appended = False
        try:
            await self._sink.checkpoint()
        except RempartError:
            self._appended = True
            log.error("audit checkpoint failed; retried at the next interval")

    async def close(self) -> None:
        """Stop the schedule, sign a last checkpoint, close the sink."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        await self._checkpoint()
        await self._sink.close()


def unavailable() -> RempartError:
    return RempartError(
        Category.UNAVAILABLE,
        "The audit trail cannot be written: the request was not served",
        headers={"retry-after": "5"},
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
