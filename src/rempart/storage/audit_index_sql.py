"""The audit search index, in SQL shared by the SQLite and PostgreSQL audit stores.

Two tables beside ``audit_event``, written in the same transaction as the records
(docs/audit.md, "Searching the audit"):

- ``audit_index``: one row per record, its single-valued keys; ordered and
  range-scanned by ``(recorded, seq)``;
- ``audit_ref``: one row per (kind, value) of a record's multi-valued keys (``patient``,
  ``agent``, ``entity``), keyed ``(kind, value, recorded, seq)`` so that "this patient,
  this week, newest first" is one index range.

Derived data: the chain and its verification never read them. Statements here use
``?`` placeholders; the PostgreSQL store turns them into ``%s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from rempart.security.audit.index import IndexRow, index_of
from rempart.security.audit.ports import AuditQuery
from rempart.storage.sql import Sql, join

INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_index (
    seq {int} PRIMARY KEY, recorded {int} NOT NULL, type TEXT, subtype TEXT, action TEXT,
    outcome TEXT, request_id TEXT);
CREATE INDEX IF NOT EXISTS audit_index_recorded ON audit_index (recorded, seq);
CREATE TABLE IF NOT EXISTS audit_ref (
    kind TEXT NOT NULL, value TEXT NOT NULL, recorded {int} NOT NULL, seq {int} NOT NULL,
    PRIMARY KEY (kind, value, recorded, seq)){without_rowid};
"""
SQLITE_INDEX_SCHEMA = INDEX_SCHEMA.format(int="INTEGER", without_rowid=" WITHOUT ROWID")
POSTGRES_INDEX_SCHEMA = INDEX_SCHEMA.format(int="BIGINT", without_rowid="")
INSERT_INDEX = (
    "INSERT INTO audit_index (seq, recorded, type, subtype, action, outcome, request_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_REF = "INSERT INTO audit_ref (kind, value, recorded, seq) VALUES (?, ?, ?, ?)"
EVENT = "SELECT body FROM audit_event WHERE seq = ?"
UNINDEXED = (
    "SELECT seq, body FROM audit_event"
    " WHERE seq > (SELECT COALESCE(MAX(seq), ?) FROM audit_index) ORDER BY seq LIMIT ?"
)
"""Records after the last indexed one: those of a store written before the index."""
COLUMNS = ("type", "subtype", "outcome", "action")
KINDS = ("patient", "agent", "entity")

Row = tuple[Any, ...]


def index_rows(
    seqs: Sequence[int], events: Iterable[Mapping[str, Any]]
) -> tuple[list[Row], list[Row]]:
    """The ``audit_index`` and ``audit_ref`` rows of ``events``, numbered ``seqs``."""
    return key_rows(seqs, [index_of(event) for event in events])


def key_rows(seqs: Iterable[int], keys: Iterable[IndexRow]) -> tuple[list[Row], list[Row]]:
    """:func:`index_rows` of keys already read by :func:`index_of`."""
    rows: list[Row] = []
    refs: list[Row] = []
    for seq, key in zip(seqs, keys, strict=True):
        rows.append(
            (seq, key.recorded, key.type, key.subtype, key.action, key.outcome, key.request_id)
        )
        refs += [(kind, value, key.recorded, seq) for kind, value in key.refs]
    return rows, refs


def search_sql(query: AuditQuery) -> Sql:
    """One page (``count + 1`` rows, to know if there is more) of ``query``."""
    source, where, params = _selection(query)
    key, direction = source[1], "DESC" if query.newest_first else "ASC"
    if query.after is not None:
        where += f" AND ({key}.recorded, {key}.seq) {'<' if query.newest_first else '>'} (?, ?)"
        params += list(query.after)
    sql = (
        f"SELECT i.seq, i.recorded, e.body FROM {source[0]}"  # noqa: S608 - fixed names, values bound
        f" JOIN audit_event e ON e.seq = i.seq WHERE {where}"
        f" ORDER BY {key}.recorded {direction}, {key}.seq {direction} LIMIT ?"
    )
    return sql, [*params, query.count + 1]


def count_sql(query: AuditQuery) -> Sql:
    source, where, params = _selection(query)
    sql = f"SELECT COUNT(*) FROM {source[0]} JOIN audit_event e ON e.seq = i.seq WHERE {where}"  # noqa: S608
    return sql, params


def _selection(query: AuditQuery) -> tuple[tuple[str, str], str, list[Any]]:
    """(FROM clause, alias to range and order on), WHERE, parameters.

    With one patient, agent or entity value, the search walks that value's
    ``audit_ref`` range (kind, value, recorded, seq), already in order; otherwise the
    ``audit_index`` date range. Other keys are checked on the rows walked.
    """
    driver = next((kind for kind in KINDS if len(getattr(query, kind)) == 1), None)
    if driver is None:
        source, parts = ("audit_index i", "i"), [_range("i", query)]
    else:
        source = ("audit_ref d JOIN audit_index i ON i.seq = d.seq", "d")
        value = getattr(query, driver)[0]
        parts = [("d.kind = ? AND d.value = ?", [driver, value]), _range("d", query)]
    for column in COLUMNS:
        values = getattr(query, column)
        if values:
            parts.append((f"i.{column} IN ({_marks(values)})", list(values)))
    for kind in KINDS:
        values = getattr(query, kind)
        if values and kind != driver:
            sql = (
                "EXISTS (SELECT 1 FROM audit_ref r WHERE r.kind = ?"  # noqa: S608 - values bound
                f" AND r.value IN ({_marks(values)})"
                " AND r.recorded = i.recorded AND r.seq = i.seq)"
            )
            parts.append((sql, [kind, *values]))
    where, params = join(" AND ", parts)
    return source, where, params


def _range(alias: str, query: AuditQuery) -> Sql:
    return f"{alias}.recorded >= ? AND {alias}.recorded < ?", [query.since, query.until]


def _marks(values: Sequence[str]) -> str:
    return ", ".join("?" * len(values))


def stored_events(rows: Iterable[tuple[Any, Any]]) -> tuple[list[int], list[Mapping[str, Any]]]:
    """``(seq, body)`` rows as read back, for :func:`index_rows`; a body that is not a
    JSON object (tampered with) is indexed as an empty event (verification reports it)."""
    seqs: list[int] = []
    events: list[Mapping[str, Any]] = []
    for seq, body in rows:
        try:
            event = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            event = None
        seqs.append(int(seq))
        events.append(event if isinstance(event, dict) else {})
    return seqs, events
