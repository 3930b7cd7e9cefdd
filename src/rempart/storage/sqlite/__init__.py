"""SQLite adapter: the embedded default (WAL, one writer thread with group commit)."""

from rempart.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
