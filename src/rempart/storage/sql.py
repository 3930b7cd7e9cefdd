"""SQL fragments as ``(text, parameters)`` pairs, shared by the search compilers, and
the one placeholder translation for the PostgreSQL adapters."""

from __future__ import annotations

from typing import Any

Sql = tuple[str, list[Any]]


def join(separator: str, parts: list[Sql], *, wrap: bool = False) -> Sql:
    """Parts joined by ``separator`` (``1 = 1`` for none), parenthesized if ``wrap``."""
    if not parts:
        return "1 = 1", []
    sql = separator.join(part[0] for part in parts)
    params = [param for part in parts for param in part[1]]
    return (f"({sql})" if wrap and len(parts) > 1 else sql), params


def as_psycopg(sql: str) -> str:
    """SQL written with ``?`` placeholders (SQLite's, in which shared statements are
    written) with psycopg's ``%s`` instead."""
    return sql.replace("?", "%s")
