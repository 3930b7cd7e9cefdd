"""The audit store's ports: a sink that appends, a reader that verification walks.

Adapters: ``rempart.storage.sqlite.audit`` (its own file, ``audit.db``) and
``rempart.storage.postgres.audit`` (its own schema, ``<schema>_audit``); opened by
``rempart.storage.open_audit``. Both are append-only: no code updates or deletes a row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from rempart.security.audit.records import Checkpoint, StoredRecord


class AuditSink(Protocol):
    async def append_many(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        """Number and chain ``events`` after the current head and commit them durably, in
        one transaction (group commit); their sequence numbers, in order. Appends from
        other tasks, threads or processes on the same store are serialized into one chain.
        Raises ``RempartError(UNAVAILABLE)`` when the store cannot be written."""
        ...

    async def checkpoint(self) -> Checkpoint:
        """Sign and store the current count and head hash."""
        ...

    async def close(self) -> None: ...


class AuditReader(Protocol):
    async def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint. Read these before the records: a checkpoint is
        written after the records it covers, so the records read next include them."""
        ...

    def records(self) -> AsyncIterator[StoredRecord]:
        """Every stored record in ``seq`` order, read in batches."""
        ...

    async def close(self) -> None: ...


class AuditStore(AuditSink, AuditReader, Protocol):
    """Both sides, as each adapter implements them."""
