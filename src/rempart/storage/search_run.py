"""Run a search: page of matches, total, includes (FHIR R4 §3.1.1.5.x, §3.1.1.6).

The steps are written once as a generator that yields ``(sql, params)`` and receives
the rows; the SQLite adapter drives it on a worker thread, the PostgreSQL one with
``await``. Results are raw :data:`~.versioning.COLUMNS` rows, decrypted by the adapter.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rempart.fhir.search.parameters import parameters_for
from rempart.fhir.search.query import (
    IdIn,
    Include,
    InCompartment,
    ReferenceQ,
    SearchQuery,
    SortKey,
    Test,
    TokenQ,
)
from rempart.storage.index import BlindIndex, cut
from rempart.storage.ports import Reach, SearchRequest
from rempart.storage.search_sql import Compiler, reach_where, visible
from rempart.storage.sql import Sql
from rempart.storage.versioning import COLUMNS

Row = tuple[Any, ...]
Steps = Generator[Sql, list[Row], "RawResult"]
SELECT = ", ".join(f"rv.{column.strip()}" for column in COLUMNS.split(","))
SORT_COLUMN = {
    "string": ("idx_string", "norm", "norm"),
    "token": ("idx_token", "code", "code"),
    "reference": ("idx_reference", "target_id", "target_id"),
    "date": ("idx_date", "lo", "hi"),
    "number": ("idx_number", "value", "value"),
    "quantity": ("idx_quantity", "lo", "hi"),
    "uri": ("idx_uri", "uri", "uri"),
}


@dataclass
class RawResult:
    matches: list[Row]
    included: list[Row]
    total: int | None
    more: bool


def run_search(request: SearchRequest, blind: BlindIndex, *, dense: bool = False) -> Steps:
    """The steps of a search. ``dense``: read the page by scanning the type in ``seq``
    order and probing each resource (see :func:`dense_applies`)."""
    query = request.query
    where, params = match_where(query, blind, request.as_of, reach=request.reach)
    if query.count > 0 and dense:
        probes, probe_params = match_where(
            query, blind, request.as_of, probe=True, reach=request.reach
        )
        page = yield _page_sql(query, probes, probe_params, request, blind)
    elif query.count > 0:
        page = yield _page_sql(query, where, params, request, blind)
    else:
        page = []
    more = len(page) > query.count
    if more and request.before_seq is not None:
        page = page[1:]  # read backwards: the extra row is the oldest one
    page = page[: query.count]
    total = None
    if request.with_total:
        counted = yield f"SELECT COUNT(*) FROM resource_version rv WHERE {where}", params
        total = int(counted[0][0])
    included = yield from _includes(query.includes, page, request, blind)
    return RawResult(page, included, total, more)


def dense_applies(query: SearchQuery, blind: BlindIndex) -> bool:
    """Whether a search may be read "dense first": one type, default order, no driving
    index. Collecting every match of each criterion, then sorting, costs the size of
    the result; scanning the type in ``seq`` order and probing each resource costs
    the distance to the ``_count``-th match, far less when most resources match (a
    common name, a code every patient has). The SQLite store tries it when collecting
    ran out of a short budget (many matches), itself under a budget (sparse ones)."""
    selective = any(
        (isinstance(node, IdIn) and not node.negate) or isinstance(node, InCompartment)
        for node in query.where
    )  # a few ids, one patient's record: collecting them is the quick way
    return (
        len(query.types) == 1
        and not query.sort
        and bool(query.where)
        and query.count > 0
        and not selective
        and _driver(query, blind) is None
    )


def match_where(
    query: SearchQuery,
    blind: BlindIndex,
    as_of: int | None,
    *,
    probe: bool = False,
    reach: Reach | None = None,
) -> Sql:
    """The WHERE clause (on alias ``rv``) of the versions matching ``query`` and
    within ``reach``."""
    parts: list[Sql] = []
    if reach is not None:
        parts.append(reach_where(reach, "rv", blind, as_of))
    if len(query.types) == 1:
        parts.append(("rv.type = ?", [query.types[0]]))
    elif query.types:
        parts.append((f"rv.type IN ({', '.join('?' * len(query.types))})", list(query.types)))
    parts.append(visible("rv", as_of))
    if query.since is not None:
        parts.append(("rv.last_updated >= ?", [query.since]))
    type_ = query.types[0] if len(query.types) == 1 else None
    compiler = Compiler(blind, as_of, probe=probe, reach=reach)
    parts.append(compiler.all_of(query.where, "rv", type_))
    return " AND ".join(p[0] for p in parts), [v for p in parts for v in p[1]]


def ids_matching(
    query: SearchQuery, blind: BlindIndex, limit: int, reach: Reach | None = None
) -> Sql:
    """SELECT of the ``(type, id)`` of current resources matching (conditional writes)."""
    where, params = match_where(query, blind, None, reach=reach)
    return f"SELECT rv.type, rv.id FROM resource_version rv WHERE {where} LIMIT ?", [
        *params,
        limit,
    ]


def _page_sql(
    query: SearchQuery, where: str, params: list[Any], request: SearchRequest, blind: BlindIndex
) -> Sql:
    limit = query.count + 1
    driver = None if query.sort else _driver(query, blind)
    if driver is not None:
        return _driven_page(query, driver, request, blind, limit)
    if query.sort:
        order, order_params = _order_by(query.sort)
        sql = (
            f"SELECT {SELECT} FROM resource_version rv WHERE {where} "
            f"ORDER BY {order}, rv.seq LIMIT ? OFFSET ?"
        )
        return sql, [*params, *order_params, limit, request.offset]
    if request.before_seq is not None:  # read backwards, then put back in order
        sql = (
            f"SELECT * FROM (SELECT {SELECT} FROM resource_version rv WHERE {where} "
            "AND rv.seq < ? ORDER BY rv.seq DESC LIMIT ?) page ORDER BY seq"
        )
        return sql, [*params, request.before_seq, limit]
    after = " AND rv.seq > ?" if request.after_seq is not None else ""
    extra = [request.after_seq] if request.after_seq is not None else []
    sql = f"SELECT {SELECT} FROM resource_version rv WHERE {where}{after} ORDER BY rv.seq LIMIT ?"
    return sql, [*params, *extra, limit]


Driver = tuple[int, str, Sql]  # criterion position, index table, its equality condition


def _driver(query: SearchQuery, blind: BlindIndex) -> Driver | None:
    """An equality criterion whose index rows can be read in ``seq`` order.

    A typed reference or a token with its system, on one type, with one value: its index
    gives the matches already ordered by ``seq``, so the page is read from the index and
    the query stops after ``_count`` of them instead of sorting every match. A reference
    is preferred: it usually names one patient, where a code names a whole population.
    """
    if len(query.types) != 1:
        return None
    candidates = [
        (position, node)
        for position, node in enumerate(query.where)
        if isinstance(node, Test) and node.modifier is None and len(node.values) == 1
    ]
    candidates.sort(key=lambda pair: not isinstance(pair[1].values[0], ReferenceQ))
    for position, node in candidates:
        value, head = node.values[0], [query.types[0], node.param.code]
        if isinstance(value, ReferenceQ) and value.type and value.id and not value.url:
            sql = (
                "d.type = ? AND d.param = ? AND d.target_id = ? AND d.target_type = ? AND d.grp = 0"
            )
            return position, "idx_reference", (sql, [*head, value.id, value.type])
        if isinstance(value, TokenQ) and value.system and value.code and not value.or_no_system:
            code = cut(blind.token(value.system, value.code))
            sql = "d.type = ? AND d.param = ? AND d.code = ? AND d.system = ? AND d.grp = 0"
            return position, "idx_token", (sql, [*head, code, cut(value.system)])
    return None


def _driven_page(
    query: SearchQuery, driver: Driver, request: SearchRequest, blind: BlindIndex, limit: int
) -> Sql:
    position, table, (condition, driver_params) = driver
    rest = replace(query, where=query.where[:position] + query.where[position + 1 :])
    where, params = match_where(rest, blind, request.as_of, probe=True, reach=request.reach)
    head = (
        f"SELECT {SELECT} FROM {table} d JOIN resource_version rv ON rv.seq = d.seq "
        f"WHERE {condition} AND {where}"
    )
    if request.before_seq is not None:
        sql = f"SELECT * FROM ({head} AND d.seq < ? ORDER BY d.seq DESC LIMIT ?) page ORDER BY seq"
        return sql, [*driver_params, *params, request.before_seq, limit]
    if request.after_seq is not None:
        return f"{head} AND d.seq > ? ORDER BY d.seq LIMIT ?", [
            *driver_params, *params, request.after_seq, limit
        ]  # fmt: skip
    return f"{head} ORDER BY d.seq LIMIT ?", [*driver_params, *params, limit]


def _order_by(keys: Sequence[SortKey]) -> Sql:
    parts: list[str] = []
    params: list[Any] = []
    for key in keys:
        direction = " DESC" if key.descending else ""
        if key.param in ("_id", "_lastUpdated"):
            column = "rv.id" if key.param == "_id" else "rv.last_updated"
            parts.append(f"{column}{direction}")
            continue
        table, ascending, descending = SORT_COLUMN[key.type]
        aggregate = f"MAX(k.{descending})" if key.descending else f"MIN(k.{ascending})"
        value = f"(SELECT {aggregate} FROM {table} k WHERE k.seq = rv.seq AND k.param = ?)"
        parts.append(f"{value} IS NULL, {value}{direction}")  # missing values last
        params += [key.param, key.param]
    return ", ".join(parts), params


def _includes(
    includes: Sequence[Include], page: list[Row], request: SearchRequest, blind: BlindIndex
) -> Generator[Sql, list[Row], list[Row]]:
    if not includes or not page:
        return []
    seen = {(row[1], row[2]) for row in page}
    found: list[Row] = []
    current = page
    for depth in range(request.include_depth):
        active = [inc for inc in includes if depth == 0 or inc.iterate]
        new: list[Row] = []
        for include in active:
            if include.reverse:
                sql = _reverse_sql(include, current, request, blind)
            else:
                targets = _targets_sql(include, current)
                sql = _forward_sql((yield targets), request, blind) if targets else None
            if sql is None:
                continue
            for row in (yield sql):
                if (row[1], row[2]) not in seen and len(found) + len(new) < request.include_limit:
                    seen.add((row[1], row[2]))
                    new.append(row)
        found += new
        current = new
        if not new:
            break
    return found


def _targets_sql(include: Include, rows: list[Row]) -> Sql | None:
    """``_include=Source:param[:Target]``: the (type, id) the page's Source resources
    refer to. Read apart, then fetched by their ids: given the join at once,
    PostgreSQL's planner chose to scan every version (200 ms at 100,000 resources)."""
    seqs = [row[0] for row in rows if include.source in ("*", row[1])]
    if not seqs:
        return None
    where = [f"r.seq IN ({', '.join('?' * len(seqs))})", "r.target_id IS NOT NULL"]
    params: list[Any] = list(seqs)
    if include.param != "*":
        where.append("r.param = ?")
        params.append(include.param)
    if include.target is not None:
        where.append("r.target_type = ?")
        params.append(include.target)
    select = "SELECT DISTINCT r.target_type, r.target_id FROM idx_reference r"
    return f"{select} WHERE {' AND '.join(where)}", params


def _forward_sql(targets: list[Row], request: SearchRequest, blind: BlindIndex) -> Sql | None:
    pairs = [(type_, id_) for type_, id_ in targets if type_ is not None][: request.include_limit]
    if not pairs:
        return None
    live, live_params = _live_within(request, blind)
    alternatives = " OR ".join(["(rv.type = ? AND rv.id = ?)"] * len(pairs))
    sql = f"SELECT {SELECT} FROM resource_version rv WHERE ({alternatives}) AND {live} LIMIT ?"
    return sql, [*(v for pair in pairs for v in pair), *live_params, request.include_limit]


def _live_within(request: SearchRequest, blind: BlindIndex) -> Sql:
    """Current as of the search, and within the caller's reach: included resources
    obey the same reach as the matches."""
    live = visible("rv", request.as_of)
    if request.reach is None:
        return live
    within = reach_where(request.reach, "rv", blind, request.as_of)
    return f"{live[0]} AND {within[0]}", [*live[1], *within[1]]


def _reverse_sql(
    include: Include, rows: list[Row], request: SearchRequest, blind: BlindIndex
) -> Sql | None:
    """``_revinclude=Source:param``: the Source resources referring to the page."""
    targets = [row for row in rows if include.param == "*" or _can_target(include, row[1])]
    if not targets:
        return None
    ids = sorted({row[2] for row in targets})
    types = sorted({row[1] for row in targets})
    where = [
        f"r.target_id IN ({', '.join('?' * len(ids))})",
        f"r.target_type IN ({', '.join('?' * len(types))})",
    ]
    params: list[Any] = [*ids, *types]
    if include.source != "*":
        where.append("r.type = ?")
        params.append(include.source)
    if include.param != "*":
        where.append("r.param = ?")
        params.append(include.param)
    live, live_params = _live_within(request, blind)
    sql = (
        f"SELECT {SELECT} FROM resource_version rv WHERE {live} AND rv.seq IN ("
        f"SELECT r.seq FROM idx_reference r WHERE {' AND '.join(where)}) LIMIT ?"
    )
    return sql, [*live_params, *params, request.include_limit]


def _can_target(include: Include, type_: str) -> bool:
    param = parameters_for(include.source).get(include.param)
    return param is not None and (not param.target or type_ in param.target)
