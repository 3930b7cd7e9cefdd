"""The audit store's statements, shared by the SQLite and PostgreSQL adapters.

Written with ``?`` placeholders, as SQLite takes them; the PostgreSQL adapter turns
them into psycopg's ``%s`` (``rempart.storage.sql.as_psycopg``). Only the table
definitions differ (column types), and stay in each adapter.
"""

from __future__ import annotations

HEAD = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
INSERT = "INSERT INTO audit_event (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)"
INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoint (count, head_hash, at, signature) VALUES (?, ?, ?, ?)"
)
PAGE = "SELECT seq, body, prev_hash, hash FROM audit_event WHERE seq > ? ORDER BY seq LIMIT ?"
CHECKPOINTS = "SELECT count, head_hash, at, signature FROM audit_checkpoint ORDER BY count"
EXPORT_MARK = "SELECT max(seq) FROM audit_export WHERE name = ?"
INSERT_MARK = "INSERT INTO audit_export (name, seq, at) VALUES (?, ?, ?)"
FIRST_SEQ = "SELECT min(seq) FROM audit_event"
HASH_OF = "SELECT hash FROM audit_event WHERE seq = ?"
SIGNED = "SELECT 1 FROM audit_checkpoint WHERE count = ? AND head_hash = ?"
PURGE = (
    "DELETE FROM audit_ref WHERE seq <= ?",
    "DELETE FROM audit_index WHERE seq <= ?",
    "DELETE FROM audit_event WHERE seq <= ?",
)
"""The only deletes: the records and their search index (``audit_index_sql``)."""
BATCH = 1000
"""Records read per page."""
FIRST = -(2**63)
"""Below any sequence number, even one an intruder inserted."""
