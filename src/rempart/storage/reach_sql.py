"""A :class:`~rempart.storage.ports.Reach` as SQL: the condition every version read
on a caller's behalf must meet, added to the WHERE clause of each query (alias given).
Values are bound; criteria go through the search compiler, so a scope restriction
``patient/Observation.rs?category=laboratory`` is the same SQL as that search."""

from __future__ import annotations

from rempart.fhir.search.query import Node
from rempart.storage.index import BlindIndex
from rempart.storage.ports import Reach
from rempart.storage.search_sql import Compiler
from rempart.storage.sql import Sql
from rempart.storage.versioning import COLUMNS

NOTHING: Sql = ("1 = 0", [])


def reach_where(reach: Reach, alias: str, blind: BlindIndex, as_of: int | None) -> Sql:
    """``(…)``: true for the versions within reach."""
    compiler = Compiler(blind, as_of)
    parts: list[Sql] = []
    for type_, where in reach.by_type:
        parts.append(_typed(compiler, alias, type_, where))
    if reach.others:
        listed = [type_ for type_, _ in reach.by_type]
        parts.append(_others(compiler, alias, listed, reach.others_where))
    if not parts:
        return NOTHING
    sql = " OR ".join(f"({part[0]})" for part in parts)
    return f"({sql})", [value for part in parts for value in part[1]]


def _typed(compiler: Compiler, alias: str, type_: str, where: Node | None) -> Sql:
    if where is None:
        return f"{alias}.type = ?", [type_]
    sql, params = compiler.node(where, alias, type_)
    return f"{alias}.type = ? AND {sql}", [type_, *params]


def _others(compiler: Compiler, alias: str, listed: list[str], where: Node | None) -> Sql:
    parts: list[Sql] = []
    if listed:
        parts.append((f"{alias}.type NOT IN ({', '.join('?' * len(listed))})", list(listed)))
    if where is not None:
        parts.append(compiler.node(where, alias, None))
    if not parts:
        return "1 = 1", []
    return " AND ".join(p[0] for p in parts), [v for p in parts for v in p[1]]


def latest_within(reach: Reach, blind: BlindIndex) -> Sql:
    """The latest version of ``type/id`` (params first), if it is within reach: an
    older version within reach is never returned in its place."""
    within, params = reach_where(reach, "rv", blind, None)
    sql = (
        f"SELECT {COLUMNS} FROM resource_version rv WHERE rv.seq = ("  # noqa: S608
        "SELECT seq FROM resource_version WHERE type = ? AND id = ? "
        f"ORDER BY version DESC LIMIT 1) AND {within}"
    )
    return sql, params


def version_within(reach: Reach, blind: BlindIndex) -> Sql:
    """Version ``type/id/version`` (params first), if it is within reach."""
    within, params = reach_where(reach, "rv", blind, None)
    sql = (
        f"SELECT {COLUMNS} FROM resource_version rv "  # noqa: S608
        f"WHERE rv.type = ? AND rv.id = ? AND rv.version = ? AND {within}"
    )
    return sql, params
