"""A group of audit events made ready to insert before it is handed to the writer.

Encoding (canonical JSON), index keys, hashes and statement parameters are Python
work. Done on the event loop before the transaction (the encoding and index keys even
as each append arrives, :func:`encode`), the store's writer (a thread for SQLite) runs
almost only the database's C code, so it seldom has to wait for the GIL while requests
are being served, nor hold it up.

The hashes need the head of the chain, which only the write lock makes certain. A
group is chained after the head this store last wrote (``expected``); under the lock,
the store reads the real head and :meth:`PreparedGroup.rows` chains the group again
only if another process (or a failed commit) moved it meanwhile. One chain for all
processes, as before: what is inserted always follows the head read under the lock.

On SQLite each table gets one multi-row ``INSERT`` (per :data:`CHUNK` rows) instead of
an ``executemany``: one statement step, one GIL release, instead of one per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rempart.security.audit.index import IndexRow, index_of
from rempart.security.audit.records import GENESIS, canonical, chain_bodies
from rempart.storage.audit_index_sql import INSERT_INDEX, INSERT_REF, Row, key_rows

Head = tuple[int, bytes]
"""The last record's sequence number and hash; ``(0, GENESIS)`` for an empty chain."""
EMPTY: Head = (0, GENESIS)
INSERT_EVENT = "INSERT INTO audit_event (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)"
CHUNK = 128
"""Rows per statement: at most 7 x 128 = 896 parameters, under SQLite's oldest limit (999)."""

Statement = tuple[str, list[Any]]


@dataclass(frozen=True)
class GroupRows:
    """The group's rows when chained after ``after``."""

    after: Head
    head: Head
    """The head once the group is in."""
    seqs: list[int]
    events: list[Row]
    """``audit_event`` rows: seq, body, prev_hash, hash."""
    index: list[Row]
    """``audit_index`` rows, as :func:`~rempart.storage.audit_index_sql.index_rows`."""
    refs: list[Row]
    """``audit_ref`` rows, likewise."""

    def statements(self) -> list[Statement]:
        """Multi-row ``INSERT`` statements (``?`` placeholders) and their parameters."""
        return [
            *insert_statements(INSERT_EVENT, self.events),
            *insert_statements(INSERT_INDEX, self.index),
            *insert_statements(INSERT_REF, self.refs),
        ]


Encoded = tuple[bytes, IndexRow]
"""An event's canonical body and its index keys."""


def encode(events: Sequence[Mapping[str, Any]]) -> list[Encoded]:
    """Done by each append as it arrives, while the previous group commits, rather
    than by the group's transaction: the events wait for that commit anyway."""
    return [(canonical(event), index_of(event)) for event in events]


class PreparedGroup:
    def __init__(self, encoded: Sequence[Encoded], expected: Head) -> None:
        self.bodies = [body for body, _ in encoded]
        self.keys = [key for _, key in encoded]
        self._rows = self._chain(expected)

    def rows(self, head: Head) -> GroupRows:
        """The rows chained after ``head``, the one read under the write lock."""
        if self._rows.after != head:  # moved by another writer: chain again (rare)
            self._rows = self._chain(head)
        return self._rows

    def _chain(self, after: Head) -> GroupRows:
        records = chain_bodies(self.bodies, *after)
        seqs = [record.seq for record in records]
        index, refs = key_rows(seqs, self.keys)
        events = [(r.seq, r.body, r.prev_hash, r.hash) for r in records]
        head = (records[-1].seq, records[-1].hash) if records else after
        return GroupRows(after, head, seqs, events, index, refs)


def insert_statements(insert: str, rows: Sequence[Row]) -> Iterator[Statement]:
    """``insert`` (one row's ``VALUES``) for all ``rows``, :data:`CHUNK` rows a statement."""
    for start in range(0, len(rows), CHUNK):
        part = rows[start : start + CHUNK]
        yield multi_row(insert, len(part)), [value for row in part for value in row]


@lru_cache(maxsize=3 * CHUNK)
def multi_row(insert: str, count: int) -> str:
    """``INSERT … VALUES (?, ?), (?, ?) …``: ``insert``'s one ``VALUES`` tuple ``count`` times."""
    prefix, _, values = insert.partition(" VALUES ")
    return f"{prefix} VALUES {', '.join([values] * count)}"
