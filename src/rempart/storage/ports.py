"""The storage port: what the FHIR interactions need from a database.

Adapters (``sqlite/``, ``postgres/``) implement :class:`ResourceStore` and pass
the same contract tests (``tests/contract``). Bodies handed in and out are the
plaintext canonical JSON; encryption at rest happens inside the adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from rempart.fhir.search.query import Node, SearchQuery

Render = Callable[[int, datetime], bytes]
"""Builds the stored JSON of a new version from its number and lastUpdated."""


@dataclass(frozen=True)
class StoredVersion:
    """One version of one resource; ``body`` is None for a deletion."""

    type: str
    id: str
    version: int
    last_updated: datetime
    body: bytes | None
    seq: int = 0
    method: str = "PUT"
    """The interaction that wrote it: POST, PUT, PATCH or DELETE."""

    @property
    def deleted(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class WriteRequest:
    """A create, update or delete of one resource, decided inside one transaction."""

    type: str
    id: str
    render: Render | None
    """None means delete."""
    expected_version: int | None = None
    """If-Match: the write happens only if the current version is this one."""
    create_only: bool = False
    """Fail with a conflict if the resource already exists (server-assigned ids)."""
    method: str = "PUT"
    """The interaction, recorded with the version for history (DELETE when render is None)."""
    guard: SearchQuery | None = None
    """Conditional writes: fail with a conflict if this query matches a resource at write
    time (a conditional create found nothing when planned; nothing may have appeared)."""


@dataclass(frozen=True)
class WriteResult:
    """The version written (or, for a no-op delete, the current state)."""

    version: StoredVersion | None
    created: bool
    changed: bool


@dataclass(frozen=True)
class Reach:
    """What a caller may see, given to the store and pushed into every query it runs
    (reads, history, search, includes, conditional matching): never a filter applied
    after reading. ``None`` in place of a Reach means everything.

    A version of type T is within reach when T is in ``by_type`` and the version meets
    its criterion (``None``: any version of T), or T is not in ``by_type``, ``others``
    is true and the version meets ``others_where`` (``None``: any).
    """

    by_type: tuple[tuple[str, Node | None], ...] = ()
    others: bool = False
    others_where: Node | None = None


@dataclass(frozen=True)
class HistoryQuery:
    """Instance, type or system history, newest first (FHIR R4 §3.1.0.11)."""

    type: str | None = None
    id: str | None = None
    since: datetime | None = None
    at: tuple[datetime, datetime] | None = None
    """Versions current at some moment of [start, end)."""
    before_seq: int | None = None
    """Paging: only versions older than this sequence number."""
    count: int = 50
    reach: Reach | None = None


@dataclass(frozen=True)
class SearchRequest:
    """One page of a search, evaluated as of ``as_of`` (µs) so that pages agree."""

    query: SearchQuery
    as_of: int
    after_seq: int | None = None
    """Default order: the page starts after this sequence number."""
    before_seq: int | None = None
    """Default order, paging backwards: the page ends before this sequence number."""
    offset: int = 0
    """With ``_sort``: how many sorted matches come before this page."""
    with_total: bool = False
    include_limit: int = 1000
    include_depth: int = 3
    reach: Reach | None = None
    """Applied to the matches, the total and every included resource."""


@dataclass(frozen=True)
class SearchResult:
    matches: list[StoredVersion]
    included: list[StoredVersion]
    total: int | None
    more: bool
    """More matches follow this page."""


class ResourceStore(Protocol):
    """Versioned resource storage."""

    async def read(self, type_: str, id_: str, reach: Reach | None = None) -> StoredVersion | None:
        """The latest version (a deletion marker if deleted), or None if never existed
        or the latest version is out of ``reach``."""

    async def vread(
        self, type_: str, id_: str, version: int, reach: Reach | None = None
    ) -> StoredVersion | None:
        """One given version, or None (also when out of ``reach``)."""

    async def write(self, request: WriteRequest) -> WriteResult:
        """Apply one write atomically; raises RempartError for a failed precondition."""

    async def write_all(self, requests: list[WriteRequest]) -> list[WriteResult]:
        """Apply writes in order, all or nothing (a transaction Bundle)."""

    async def history(self, query: HistoryQuery) -> list[StoredVersion]:
        """Versions matching the query, newest first, at most ``query.count``."""

    async def search(self, request: SearchRequest) -> SearchResult:
        """A page of matches with its includes and, if asked, the total."""

    async def matching(
        self, query: SearchQuery, limit: int, reach: Reach | None = None
    ) -> list[tuple[str, str]]:
        """``(type, id)`` of at most ``limit`` current resources matching (conditionals)."""

    async def rewrap(self, batch: int = 500) -> int:
        """Re-encrypt rows not under the active data key; return how many."""

    async def close(self) -> None:
        """Release connections and threads."""


def to_micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def now_micros(after: int = 0) -> int:
    """The current time in microseconds, strictly after ``after`` (monotonic per row)."""
    return max(to_micros(datetime.now(UTC)), after + 1)
