"""A :class:`~rempart.storage.ports.Reach` as SQL for point reads: the latest version
or one version, only if within reach. The condition itself (``reach_where``) lives
with the search compiler, which applies it to the main query and to every resource a
chain, ``_has`` or ``_list`` joins. Values are bound; criteria go through the search
compiler, so a scope restriction ``patient/Observation.rs?category=laboratory`` is
the same SQL as that search."""

from __future__ import annotations

from rempart.storage.index import BlindIndex
from rempart.storage.ports import Reach
from rempart.storage.search_sql import reach_where
from rempart.storage.sql import Sql
from rempart.storage.versioning import COLUMNS


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


__all__ = ["latest_within", "reach_where", "version_within"]
