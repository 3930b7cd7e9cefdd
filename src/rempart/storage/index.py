"""Search index rows: what each stored version is found by (docs/decisions/0004).

Every version with a body gets rows in one table per search type, keyed by the
version's ``seq``; rows of older versions stay, so a search can be evaluated as of a
moment (paging over a snapshot) by checking which version was current then. A
composite value is stored as its components (parameter ``code$0``, ``code$1``...)
sharing a ``grp`` number. ``idx_compartment`` records the compartments (FHIR R4
§3.2.1) a version belongs to, which compartment search, ``$everything`` and patient
restrictions read.

Person identifiers (INS, ``urn:oid:1.2.250.1.213.1.4.8``) are stored as keyed hashes
(a blind index): the search value is hashed the same way, the number never is in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import orjson

from rempart.fhir.compartments import compartment_types, params_for
from rempart.fhir.search.extract import (
    BLIND_SYSTEMS,
    CompositeValue,
    DateValue,
    IndexValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    extract,
)
from rempart.storage.ports import WriteRequest, from_micros

NOT_INDEXED = frozenset({"_id", "_lastUpdated"})  # read from the version row itself
INFINITY = float("inf")
DAY = 86_400_000_000  # µs: a date period longer than this is "long" (search_dates.py)
INDEXED_CHARS = 200
"""Longest text kept in an index column. PostgreSQL b-tree rows are limited to about
2.7 kB; searches cut their values the same way, so an exact match compares the first
200 characters (a longer value can only match another sharing those)."""

# table → its value columns (after seq, type, param, grp)
TABLES: dict[str, tuple[str, ...]] = {
    "idx_string": ("norm", "raw"),
    "idx_token": ("system", "code", "text"),
    "idx_reference": ("target_type", "target_id", "url"),
    "idx_date": ("lo", "hi", "many", "long"),
    "idx_number": ("value",),
    "idx_quantity": ("lo", "hi", "system", "code"),
    "idx_uri": ("uri",),
}
TABLE_OF_TYPE = {
    "string": "idx_string",
    "token": "idx_token",
    "reference": "idx_reference",
    "date": "idx_date",
    "number": "idx_number",
    "quantity": "idx_quantity",
    "uri": "idx_uri",
}
Rows = dict[str, list[tuple[Any, ...]]]


class BlindIndex:
    """Keyed hashes of person identifiers (HMAC-SHA256 under a key beside the data keys)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, system: str | None, code: str) -> str:
        if system not in BLIND_SYSTEMS:
            return code
        digest = hmac.new(self._key, f"{system}|{code}".encode(), hashlib.sha256)
        return "h:" + digest.hexdigest()[:40]


def index_rows(type_: str, id_: str, body: bytes, blind: BlindIndex) -> Rows:
    """The index rows of one version, per table, without their ``seq``."""
    resource = _parse(body)
    rows: Rows = defaultdict(list)
    group = 0
    references: list[ReferenceValue] = []
    for value in extract(resource):
        if value.param in NOT_INDEXED:
            continue
        if isinstance(value, CompositeValue):
            group += 1
            for number, part in enumerate(value.parts):
                _add(rows, type_, f"{value.param}${number}", group, part, blind)
            continue
        if isinstance(value, ReferenceValue):
            references.append(value)
        _add(rows, type_, value.param, 0, value, blind)
    rows["idx_compartment"] = compartment_rows(type_, id_, references)
    rows["idx_date"] = _mark_many(rows["idx_date"])
    rows["idx_token"] = _unique(rows["idx_token"], 5)  # one row per code, whatever its text
    # One row per target: an absolute and a relative reference to it keep the URL.
    rows["idx_reference"] = _unique(sorted(rows["idx_reference"], key=_url_first), 5)
    return rows


def _mark_many(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Set ``many`` on the dates of a parameter that has several (search_dates.py)."""
    counts = Counter(row[1] for row in rows)
    return [(*row[:5], int(counts[row[1]] > 1), row[6]) for row in rows]


def _url_first(row: tuple[Any, ...]) -> bool:
    return row[5] is None


def _unique(rows: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """The rows whose first ``width`` columns were not seen before, in order."""
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        seen.setdefault(row[:width], row)
    return list(seen.values())


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # a decimal beyond double range: read it exactly
        return json.loads(body, parse_float=Decimal)


def compartment_rows(
    type_: str, id_: str, references: list[ReferenceValue]
) -> list[tuple[Any, ...]]:
    """``(compartment type, compartment id)`` of every compartment the resource is in."""
    found: set[tuple[str, str]] = set()
    for compartment in compartment_types():
        if compartment == type_:
            found.add((type_, id_))  # a resource is in its own compartment
        params = params_for(compartment, type_)
        for ref in references:
            if ref.param in params and ref.type == compartment and ref.id:
                found.add((compartment, ref.id))
    return sorted(found)


def cut(text: str | None) -> str | None:
    """A text as the index keeps it (:data:`INDEXED_CHARS`)."""
    return text if text is None or len(text) <= INDEXED_CHARS else text[:INDEXED_CHARS]


def _add(
    rows: Rows, type_: str, param: str, group: int, value: IndexValue, blind: BlindIndex
) -> None:
    head = (type_, param, group)
    if isinstance(value, StringValue):
        rows["idx_string"].append((*head, cut(value.normalized), cut(value.raw)))
    elif isinstance(value, TokenValue):
        code = blind.token(value.system, value.code)
        text = None if code != value.code else value.text
        rows["idx_token"].append((*head, cut(value.system), cut(code), cut(text)))
    elif isinstance(value, ReferenceValue):
        rows["idx_reference"].append((*head, value.type, cut(value.id), cut(value.url)))
    elif isinstance(value, DateValue):
        long = int(value.end - value.start > DAY)
        rows["idx_date"].append((*head, value.start, value.end, 0, long))
    elif isinstance(value, NumberValue):
        rows["idx_number"].append((*head, float(value.value)))
    elif isinstance(value, QuantityValue):
        low = -INFINITY if value.low is None else float(value.low)
        high = INFINITY if value.high is None else float(value.high)
        rows["idx_quantity"].append((*head, low, high, cut(value.system), cut(value.code)))
    elif isinstance(value, UriValue):
        rows["idx_uri"].append((*head, cut(value.uri)))


def schema(dialect: str, prefix: str = "") -> str:
    """The DDL of the index tables; ``dialect`` is ``sqlite`` or ``postgres``."""
    integer = "INTEGER" if dialect == "sqlite" else "BIGINT"
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    text = "TEXT" if dialect == "sqlite" else 'TEXT COLLATE "C"'
    kinds = {"lo": integer, "hi": integer, "value": real, "grp": "INTEGER", "many": "INTEGER"}
    kinds["long"] = "INTEGER"
    statements = []
    for table, columns in TABLES.items():
        numeric = real if table in ("idx_quantity", "idx_number") else integer
        types = {**kinds, "lo": numeric, "hi": numeric}
        cols = ", ".join(f"{c} {types.get(c, text)}" for c in ("grp", *columns))
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {prefix}{table} "
            f"(seq {integer} NOT NULL, type {text} NOT NULL, param {text} NOT NULL, {cols})"
        )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {prefix}idx_compartment "
        f"(seq {integer} NOT NULL, comp_type {text} NOT NULL, comp_id {text} NOT NULL)"
    )
    statements += [
        f"CREATE INDEX IF NOT EXISTS {name} ON {prefix}{table} ({columns})"
        for name, table, columns in INDEXES
    ]
    return ";\n".join(statements) + ";\n"


# The seq indexes carry the parameter (and a date's bounds): a probe by seq (a driven
# or dense page, a sort key) then reads only the rows of its parameter.
INDEXES = (
    ("idx_string_value", "idx_string", "type, param, norm"),
    ("idx_string_seq", "idx_string", "seq, param"),
    # seq last: an equality search reads its matches in seq order and stops at a page.
    ("idx_token_value", "idx_token", "type, param, code, system, seq"),
    ("idx_token_seq", "idx_token", "seq, param"),
    ("idx_reference_value", "idx_reference", "type, param, target_id, target_type, seq"),
    ("idx_reference_target", "idx_reference", "target_id, target_type"),
    ("idx_reference_seq", "idx_reference", "seq, param"),
    ("idx_date_value", "idx_date", "type, param, many, long, lo, hi, seq"),  # covering
    ("idx_date_seq", "idx_date", "seq, param, lo, hi"),
    ("idx_number_value", "idx_number", "type, param, value"),
    ("idx_number_seq", "idx_number", "seq, param"),
    ("idx_quantity_value", "idx_quantity", "type, param, code, lo"),
    ("idx_quantity_seq", "idx_quantity", "seq, param"),
    ("idx_uri_value", "idx_uri", "type, param, uri"),
    ("idx_uri_seq", "idx_uri", "seq, param"),
    ("idx_compartment_member", "idx_compartment", "comp_id, comp_type"),
    ("idx_compartment_seq", "idx_compartment", "seq"),
)


COLUMNS: dict[str, tuple[str, ...]] = {
    **{table: ("seq", "type", "param", "grp", *columns) for table, columns in TABLES.items()},
    "idx_compartment": ("seq", "comp_type", "comp_id"),
}
"""Every column of every index table, in the order of the rows (``seq`` first)."""


def insert_statements(placeholder: str) -> dict[str, str]:
    """``INSERT`` per table with the adapter's placeholder (``?`` or ``%s``)."""
    statements = {}
    for table, names in COLUMNS.items():
        marks = ", ".join([placeholder] * len(names))
        statements[table] = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
    return statements


def rows_for(request: WriteRequest, blind: BlindIndex) -> Rows | None:
    """The index rows of a write, computed before it from what it will store. They do
    not depend on the version number or time, which the store decides at write time."""
    if request.render is None:
        return None
    return index_rows(request.type, request.id, request.render(1, from_micros(0)), blind)


def compartments_of(type_: str, id_: str, body: bytes) -> set[tuple[str, str]]:
    """The compartments a version with this body belongs to, as the index will record
    them (checked before a write on behalf of a caller with a restricted reach)."""
    references = [v for v in extract(_parse(body)) if isinstance(v, ReferenceValue)]
    return set(compartment_rows(type_, id_, references))
