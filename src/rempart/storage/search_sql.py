"""Compile a :class:`~rempart.fhir.search.query.SearchQuery`'s criteria to SQL.

One SQL text serves SQLite and PostgreSQL (``?`` placeholders; the PostgreSQL adapter
rewrites them). Each criterion becomes a condition on a ``resource_version`` alias,
driven by the index tables (:mod:`.index`): ``alias.seq IN (SELECT … FROM idx_…)``, so
the database starts from the most selective index. Chains join the referenced version,
``_has`` the referring one; every joined version must be visible at the same moment
as the searched one (:func:`visible`). Prefix semantics follow FHIR R4 §3.1.1.4.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rempart.fhir.search.parameters import SearchParam
from rempart.fhir.search.query import (
    AllOf,
    AnyOf,
    Chain,
    CompositeQ,
    DateQ,
    Has,
    IdIn,
    InCompartment,
    InList,
    Missing,
    Node,
    NumberQ,
    ReferenceQ,
    StringQ,
    Test,
    TokenQ,
    Updated,
    UriQ,
    Value,
)
from rempart.storage.index import INDEXED_CHARS, TABLE_OF_TYPE, BlindIndex, cut
from rempart.storage.ports import Reach
from rempart.storage.search_dates import date_criteria, date_sql
from rempart.storage.sql import Sql, join

TOP = "\U0010ffff"  # sorts after every other character: prefix ranges end here


def visible(alias: str, as_of: int | None) -> Sql:
    """The alias is a live version, current now (``as_of`` None) or at ``as_of`` (µs)."""
    if as_of is None:
        return f"{alias}.superseded IS NULL AND {alias}.body IS NOT NULL", []
    return (
        f"{alias}.last_updated <= ? AND ({alias}.superseded IS NULL OR {alias}.superseded > ?)"
        f" AND {alias}.body IS NOT NULL",
        [as_of, as_of],
    )


class Compiler:
    """Criteria to SQL for one search; ``depth`` keeps aliases of nested joins apart."""

    def __init__(
        self,
        blind: BlindIndex,
        as_of: int | None,
        *,
        probe: bool = False,
        reach: Reach | None = None,
    ) -> None:
        self._blind = blind
        self._as_of = as_of
        self._aliases = 0
        self._reach = reach
        """The caller's reach, applied to every resource a criterion joins (chains,
        ``_has``, ``_list``): a criterion may only ask about records the caller sees."""
        self._probe = probe
        """Criteria as correlated ``EXISTS`` probes by ``seq``: for a page driven by
        another criterion's index, which yields few candidates to check, where
        ``seq IN (SELECT …)`` would first collect every match of the criterion."""

    def all_of(self, nodes: tuple[Node, ...], alias: str, type_: str | None) -> Sql:
        dates: dict[str, list[Test]] = {}
        others: list[Node] = []
        for node in nodes:
            if type_ is not None and _plain_date(node) and not self._probe:
                assert isinstance(node, Test)
                dates.setdefault(node.param.code, []).append(node)
            else:
                others.append(node)
        parts = [self.node(node, alias, type_) for node in others]
        for tests in dates.values():
            parts.append(date_criteria(tests, alias, _must(type_), self._next))
        return join(" AND ", parts) if parts else ("1 = 1", [])

    def node(self, node: Node, alias: str, type_: str | None) -> Sql:
        if isinstance(node, Test):
            return self._test(node, alias, _must(type_))
        if isinstance(node, Missing):
            return self._missing(node, alias, _must(type_))
        if isinstance(node, IdIn):
            return _id_in(node, alias)
        if isinstance(node, Updated):
            column = f"{alias}.last_updated"
            parts = [date_sql(value, column, f"({column} + 1)") for value in node.values]
            return join(" OR ", parts, wrap=True)
        if isinstance(node, AnyOf):
            return join(" OR ", [self.node(n, alias, type_) for n in node.nodes], wrap=True)
        if isinstance(node, AllOf):
            sql, params = self.all_of(node.nodes, alias, type_)
            return f"({sql})", params
        return self._joined(node, alias, type_)

    def _joined(self, node: Node, alias: str, type_: str | None) -> Sql:
        if isinstance(node, Chain):
            return self._chain(node, alias, _must(type_))
        if isinstance(node, Has):
            return self._has(node, alias, _must(type_))
        if isinstance(node, InList):
            return self._in_list(node, alias)
        if isinstance(node, InCompartment):
            if self._probe:
                return (
                    f"EXISTS (SELECT 1 FROM idx_compartment c WHERE c.seq = {alias}.seq "
                    "AND c.comp_type = ? AND c.comp_id = ?)",
                    [node.type, node.id],
                )
            return (
                f"{alias}.seq IN (SELECT c.seq FROM idx_compartment c "
                "WHERE c.comp_type = ? AND c.comp_id = ?)",
                [node.type, node.id],
            )
        raise TypeError(node)

    def _live(self, alias: str) -> Sql:
        """A joined version: current as of the search, and within the caller's reach."""
        live = visible(alias, self._as_of)
        if self._reach is None:
            return live
        within = reach_where(self._reach, alias, self._blind, self._as_of)
        return f"{live[0]} AND {within[0]}", [*live[1], *within[1]]

    def _next(self, stem: str) -> str:
        self._aliases += 1
        return f"{stem}{self._aliases}"

    def _test(self, test: Test, alias: str, type_: str) -> Sql:
        if test.param.type == "composite":
            parts = [self._composite(test.param, v, alias, type_) for v in test.values]
            return join(" OR ", parts, wrap=True)
        i = self._next("i")
        table = TABLE_OF_TYPE[test.param.type]
        values = [self._value(test.param.type, test.modifier, v, i) for v in test.values]
        where, params = join(" OR ", values, wrap=True)
        negate = "NOT " if test.modifier == "not" else ""
        if self._probe:
            sql = (
                f"{negate}EXISTS (SELECT 1 FROM {table} {i} WHERE {i}.seq = {alias}.seq "
                f"AND {i}.type = ? AND {i}.param = ? AND {where})"
            )
            return sql, [type_, test.param.code, *params]
        sql = (
            f"{alias}.seq {negate}IN (SELECT {i}.seq FROM {table} {i} "
            f"WHERE {i}.type = ? AND {i}.param = ? AND {where})"
        )
        return sql, [type_, test.param.code, *params]

    def _composite(self, param: SearchParam, value: Value, alias: str, type_: str) -> Sql:
        assert isinstance(value, CompositeQ)
        first = self._next("c")
        sql = f"SELECT {first}.seq FROM "
        joins: list[str] = []
        where, params = [f"{first}.type = ?", f"{first}.param = ?"], [type_, f"{param.code}$0"]
        join_params: list[Any] = []
        for number, (component, part) in enumerate(zip(param.components, value.parts, strict=True)):
            table = TABLE_OF_TYPE[component.type]
            c = first if number == 0 else self._next("c")
            if number == 0:
                joins.append(f"{table} {c}")
            else:
                joins.append(
                    f"JOIN {table} {c} ON {c}.seq = {first}.seq AND {c}.grp = {first}.grp "
                    f"AND {c}.param = ?"
                )
                join_params.append(f"{param.code}${number}")
            cond, cond_params = self._value(component.type, None, part, c)
            where.append(cond)
            params += cond_params
        sql += " ".join(joins) + " WHERE " + " AND ".join(where)
        return f"{alias}.seq IN ({sql})", [*join_params, *params]

    def _value(self, type_: str, modifier: str | None, value: Value, i: str) -> Sql:
        if isinstance(value, StringQ):
            return _string(value, modifier, i)
        if isinstance(value, TokenQ):
            return self._token(value, modifier, i)
        if isinstance(value, ReferenceQ):
            return _reference(value, i)
        if isinstance(value, DateQ):
            return date_sql(value, f"{i}.lo", f"{i}.hi")
        if isinstance(value, NumberQ):
            if type_ == "number":
                return _number(value, f"{i}.value", f"{i}.value")
            return _quantity(value, i)
        if isinstance(value, UriQ):
            return _uri(value, modifier, i)
        raise TypeError(value)

    def _token(self, value: TokenQ, modifier: str | None, i: str) -> Sql:
        if modifier == "text":
            return f"{i}.text LIKE ? ESCAPE '\\'", [f"%{_like(value.code or '')}%"]
        parts: list[Sql] = []
        if value.code is not None:
            parts.append((f"{i}.code = ?", [cut(self._blind.token(value.system, value.code))]))
        if value.no_system:
            parts.append((f"{i}.system IS NULL", []))
        elif value.system is not None and value.or_no_system:
            parts.append((f"({i}.system = ? OR {i}.system IS NULL)", [cut(value.system)]))
        elif value.system is not None:
            parts.append((f"{i}.system = ?", [cut(value.system)]))
        return join(" AND ", parts, wrap=True)

    def _missing(self, node: Missing, alias: str, type_: str) -> Sql:
        param, table = node.param, TABLE_OF_TYPE.get(node.param.type)
        if param.type == "composite":
            param_code, table = f"{param.code}$0", TABLE_OF_TYPE[param.components[0].type]
        else:
            param_code = param.code
        negate = "NOT " if node.missing else ""
        i = self._next("i")
        sql = (
            f"{alias}.seq {negate}IN (SELECT {i}.seq FROM {table} {i} "
            f"WHERE {i}.type = ? AND {i}.param = ?)"
        )
        return sql, [type_, param_code]

    def _chain(self, node: Chain, alias: str, type_: str) -> Sql:
        r, t = self._next("r"), self._next("t")
        live, live_params = self._live(t)
        inner, inner_params = self.node(node.inner, t, node.target)
        join = (
            f"FROM idx_reference {r} "
            f"JOIN resource_version {t} ON {t}.type = {r}.target_type AND {t}.id = {r}.target_id "
            f"WHERE {r}.type = ? AND {r}.param = ? AND {r}.target_type = ? "
            f"AND {live} AND {inner}"
        )
        params = [type_, node.param.code, node.target, *live_params, *inner_params]
        if self._probe:
            return f"EXISTS (SELECT 1 {join} AND {r}.seq = {alias}.seq)", params
        return f"{alias}.seq IN (SELECT {r}.seq {join})", params

    def _has(self, node: Has, alias: str, type_: str) -> Sql:
        r, s = self._next("r"), self._next("s")
        live, live_params = self._live(s)
        inner, inner_params = self.node(node.inner, s, node.source)
        join = (
            f"FROM idx_reference {r} JOIN resource_version {s} ON {s}.seq = {r}.seq "
            f"WHERE {r}.type = ? AND {r}.param = ? AND {r}.target_type = ? "
            f"AND {live} AND {inner}"
        )
        params = [node.source, node.param.code, type_, *live_params, *inner_params]
        if self._probe:
            return f"EXISTS (SELECT 1 {join} AND {r}.target_id = {alias}.id)", params
        return f"{alias}.id IN (SELECT {r}.target_id {join})", params

    def _in_list(self, node: InList, alias: str) -> Sql:
        r, lst = self._next("r"), self._next("l")
        live, live_params = self._live(lst)
        sql = (
            f"{alias}.id IN (SELECT {r}.target_id FROM idx_reference {r} "
            f"JOIN resource_version {lst} ON {lst}.seq = {r}.seq "
            f"WHERE {r}.type = 'List' AND {r}.param = 'item' AND {lst}.id = ? "
            f"AND {r}.target_type = {alias}.type AND {live})"
        )
        return sql, [node.list_id, *live_params]


def _must(type_: str | None) -> str:
    if type_ is None:
        raise ValueError("a type-specific criterion needs a resource type")
    return type_


def _id_in(node: IdIn, alias: str) -> Sql:
    if not node.ids:
        return ("1 = 1" if node.negate else "1 = 0"), []
    marks = ", ".join("?" * len(node.ids))
    negate = "NOT " if node.negate else ""
    return f"{alias}.id {negate}IN ({marks})", list(node.ids)


def _string(value: StringQ, modifier: str | None, i: str) -> Sql:
    if modifier == "exact":
        return f"{i}.raw = ?", [cut(value.raw)]
    text = value.normalized[:INDEXED_CHARS]
    if modifier == "contains":
        return f"{i}.norm LIKE ? ESCAPE '\\'", [f"%{_like(text)}%"]
    return f"({i}.norm >= ? AND {i}.norm < ?)", [text, text + TOP]


def _reference(value: ReferenceQ, i: str) -> Sql:
    parts: list[Sql] = []
    if value.id is not None and value.type is not None:
        parts.append((f"({i}.target_type = ? AND {i}.target_id = ?)", [value.type, value.id]))
    elif value.id is not None:
        parts.append((f"{i}.target_id = ?", [value.id]))
    if value.url is not None:
        parts.append((f"{i}.url = ?", [cut(value.url)]))
    return join(" OR ", parts, wrap=True)


def _uri(value: UriQ, modifier: str | None, i: str) -> Sql:
    uri = cut(value.uri) or ""
    if modifier == "below":
        return f"({i}.uri = ? OR {i}.uri LIKE ? ESCAPE '\\')", [
            uri,
            _like(uri.rstrip("/")) + "/%",
        ]
    if modifier == "above":
        prefixes = [cut(prefix) for prefix in _uri_prefixes(value.uri)]
        return f"{i}.uri IN ({', '.join('?' * len(prefixes))})", prefixes
    return f"{i}.uri = ?", [uri]


def _uri_prefixes(uri: str) -> list[str]:
    """``http://a/b/c`` → itself, ``http://a/b``, ``http://a`` (never the bare scheme)."""
    head, sep, path = uri.partition("://")
    if not sep:
        return [uri]
    parts = path.split("/")
    return [f"{head}://{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]


def _plain_date(node: Node) -> bool:
    """A date criterion that :func:`date_criteria` can serve from the index."""
    return isinstance(node, Test) and node.param.type == "date" and node.modifier is None


def _number(value: NumberQ, lo: str, hi: str) -> Sql:
    """A stored closed range ``[lo, hi]`` (a point for numbers) against a search value."""
    v, low, high = float(value.value), float(value.low), float(value.high)
    prefix = value.prefix
    if prefix == "ap":  # within 10%, and never less than eq finds
        margin = abs(value.value) * Decimal("0.1")
        low_ap, high_ap = (
            min(value.low, value.value - margin),
            max(value.high, value.value + margin),
        )
        return f"({lo} <= ? AND {hi} >= ?)", [float(high_ap), float(low_ap)]
    if prefix in ("eq", "ne"):
        negate = "NOT " if prefix == "ne" else ""
        return f"{negate}({lo} >= ? AND {hi} < ?)", [low, high]
    column = hi if prefix in ("gt", "ge", "eb") else lo
    operator = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "sa": ">", "eb": "<"}[prefix]
    return f"{column} {operator} ?", [v]


def _quantity(value: NumberQ, i: str) -> Sql:
    parts = [_number(value, f"{i}.lo", f"{i}.hi")]
    if value.code is not None:
        parts.append((f"{i}.code = ?", [value.code]))
    if value.system is not None:
        parts.append((f"{i}.system = ?", [value.system]))
    return join(" AND ", parts, wrap=True)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


NOTHING: Sql = ("1 = 0", [])


def reach_where(reach: Reach, alias: str, blind: BlindIndex, as_of: int | None) -> Sql:
    """``(…)``: true for the versions (on ``alias``) within ``reach``. Its criteria are
    compiled without reach of their own: they are the reach."""
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
