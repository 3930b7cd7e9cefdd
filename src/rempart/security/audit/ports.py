"""The audit store's ports: a sink that appends, a reader that verification walks,
and a search over the index kept beside the records.

Adapters: ``rempart.storage.sqlite.audit`` (its own file, ``audit.db``) and
``rempart.storage.postgres.audit`` (its own schema, ``<schema>_audit``); opened by
``rempart.storage.open_audit``. Both are append-only: no code updates a row, and the
one delete is :meth:`AuditRetention.purge`, which removes the oldest records only after
signing a checkpoint that anchors what remains, and records the removal in the chain
(docs/audit-export.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
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

    def records(self, after: int | None = None) -> AsyncIterator[StoredRecord]:
        """Every stored record in ``seq`` order (those after ``after``, if given), read
        in batches."""
        ...

    async def close(self) -> None: ...


Removal = Callable[[int, int, bytes], Mapping[str, Any]]
"""Builds the event that records a purge, from the first and last removed ``seq`` and
the hash of the last one."""


@dataclass(frozen=True)
class Purged:
    first: int
    """The first removed record."""
    through: int
    """The last removed record; a signed checkpoint of ``through`` records anchors the rest."""
    head_hash: bytes
    """The hash of record ``through``."""
    event_seq: int
    """Where the removal event was chained."""


class AuditRetention(Protocol):
    """Export marks and the one path by which records leave the store."""

    async def export_mark(self, name: str) -> int | None:
        """The last ``seq`` delivered to the destination ``name``; ``None`` if never."""
        ...

    async def mark_exported(self, name: str, seq: int) -> None:
        """Record that records up to ``seq`` were delivered to ``name``; a mark never
        moves back (a lower ``seq`` is ignored)."""
        ...

    async def purge(self, through: int, removal: Removal) -> Purged:
        """In one transaction under the chain lock: sign a checkpoint of ``through``
        records (unless one exists), delete records up to ``through``, chain the event
        ``removal`` builds after the head, and sign a checkpoint after it. Raises
        ``RempartError(INCORRECT)`` if record ``through`` is not stored."""
        ...


# --- searching the audit (GET /fhir/AuditEvent; docs/audit.md, "Searching the audit") ---


@dataclass(frozen=True)
class AuditQuery:
    """One page of an audit search. Filters are ANDed; the values of one filter ORed."""

    since: int
    """Start of the ``recorded`` range, µs since the epoch (UTC), included."""
    until: int
    """End of the ``recorded`` range, excluded."""
    patient: tuple[str, ...] = ()
    """Patient ids (``123``, not ``Patient/123``)."""
    agent: tuple[str, ...] = ()
    """An agent's ``who.reference`` or ``who.identifier.value`` (client id, user name)."""
    entity: tuple[str, ...] = ()
    """An entity's ``what.reference``, with or without ``/_history/v``."""
    type: tuple[str, ...] = ()
    subtype: tuple[str, ...] = ()
    outcome: tuple[str, ...] = ()
    action: tuple[str, ...] = ()
    count: int = 50
    after: tuple[int, int] | None = None
    """``(recorded, seq)`` of the last record of the previous page."""
    newest_first: bool = True
    with_total: bool = False


@dataclass(frozen=True)
class AuditHit:
    seq: int
    recorded: int
    body: bytes


@dataclass(frozen=True)
class AuditPage:
    hits: list[AuditHit]
    more: bool
    """Whether more records match after this page."""
    total: int | None = None
    """How many records match the whole query (when asked)."""


class AuditSearch(Protocol):
    async def search(self, query: AuditQuery) -> AuditPage:
        """The records ``query`` selects, ordered by (``recorded``, ``seq``)."""
        ...

    async def event(self, seq: int) -> bytes | None:
        """The stored body of record ``seq``, if there is one."""
        ...


class AuditStore(AuditSink, AuditReader, AuditRetention, AuditSearch, Protocol):
    """Both sides, as each adapter implements them."""
