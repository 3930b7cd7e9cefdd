"""PostgreSQL adapter: the production store (psycopg 3, async pool)."""

from rempart.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
