"""Group commit for the audit store: appends that arrive while a transaction is being
written wait, then go together in the next one.

An interaction is answered only once its AuditEvent is committed (design.md, Audit),
so each append waits for a commit; gathering the appends of concurrent requests into
one transaction makes that one commit, and one fsync, per group instead of per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Event = TypeVar("Event")
"""What the store appends: an event, or an event already encoded for it."""


class GroupCommit(Generic[Event]):
    """Serializes the writes of one store instance and batches those that queue up."""

    def __init__(self, write: Callable[[list[Event]], Awaitable[list[int]]]) -> None:
        self._write = write
        self._pending: list[tuple[list[Event], asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, events: Sequence[Event]) -> list[int]:
        if not events:
            return []
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((list(events), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                seqs = await self._write([event for events, _ in group for event in events])
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets it raised
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for events, future in group:
                if not future.done():  # a caller cancelled meanwhile: its events are written
                    future.set_result(seqs[start : start + len(events)])
                start += len(events)

    async def close(self) -> None:
        """Wait for the appends already accepted."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
