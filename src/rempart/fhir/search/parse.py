"""Parse a FHIR search request into a :class:`~.query.SearchQuery` (FHIR R4 §3.1.1).

Parameter names carry modifiers (``name:exact``), chains (``subject:Patient.name``) and
reverse chains (``_has:Observation:patient:code``); values are comma-separated (OR) with
``\\`` escapes, and repeated parameters are ANDed (§3.1.1.3). Values are typed by the
parameter's search type (:mod:`.values`). Errors never echo the caller's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rempart.errors import Category, RempartError
from rempart.fhir.bindings import value_set
from rempart.fhir.search.extract import skipped_for
from rempart.fhir.search.parameters import SearchParam, parameters_for
from rempart.fhir.search.query import (
    AnyOf,
    Chain,
    Has,
    IdIn,
    Include,
    InList,
    Missing,
    Node,
    ReferenceQ,
    SearchQuery,
    SortKey,
    Test,
    TokenQ,
    Updated,
)
from rempart.fhir.search.values import parse_date, parse_value, split_values, unescaped_split

RESULT_PARAMS = {
    "_sort",
    "_count",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_contained",
    "_containedType",
    "_format",
    "_pretty",
    "_cursor",
}
MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "missing", "in", "not-in", "of-type"},
    "reference": {"missing", "identifier"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"below", "above", "missing"},
    "composite": {"missing"},
}
TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")
SUMMARIES = ("true", "text", "data", "count", "false")
TOTALS = ("none", "estimate", "accurate")
UNSUPPORTED = {"_text", "_content", "_query", "_filter"}


@dataclass(frozen=True)
class Limits:
    default_count: int = 50
    max_count: int = 500
    max_chain_depth: int = 3


def parse_search(
    types: Sequence[str],
    params: Sequence[tuple[str, str]],
    *,
    strict: bool = False,
    limits: Limits = Limits(),
) -> SearchQuery:
    """The query for ``params`` over ``types`` (one type, or several for system search)."""
    where: list[Node] = []
    ignored: list[str] = []
    for key, value in params:
        if key in ("_contained", "_containedType") and value != "false":
            if strict:
                raise RempartError(Category.INCORRECT, "_contained is not supported")
            ignored.append(key)  # contained resources are not searched
            continue
        if key in RESULT_PARAMS or key == "_type":
            continue
        try:
            where.append(_criterion(types, key, value, limits.max_chain_depth))
        except _Unknown as unknown:
            if strict:
                raise RempartError(Category.INCORRECT, str(unknown), code="not-supported") from None
            ignored.append(_safe_name(key))
    return SearchQuery(
        types=tuple(types),
        where=tuple(where),
        sort=_sort(types, params),
        count=_count(params, limits),
        total=_choice(params, "_total", TOTALS, "none"),
        summary=_summary(params),
        elements=_elements(params),
        includes=_includes(params),
        ignored=tuple(ignored),
    )


class _Unknown(Exception):
    """A parameter the server does not know: ignored (lenient) or refused (strict)."""


def _criterion(types: Sequence[str], key: str, value: str, depth: int) -> Node:
    if len(types) != 1:
        return _common_criterion(types, key, value)
    return _node(types[0], key, value, depth)


def _common_criterion(types: Sequence[str], key: str, value: str) -> Node:
    """System search: only the parameters every resource has (§3.1.1.1)."""
    name = key.split(":", 1)[0]
    if name in ("_id", "_lastUpdated"):
        return _node("Resource", key, value, 0)
    if name not in ("_tag", "_profile", "_security", "_source") or not types:
        raise _Unknown(
            "Only _id, _lastUpdated, _tag, _profile, _security and _source can search several types"
        )
    return AnyOf(tuple(_node(type_, key, value, 0) for type_ in types))


def _node(type_: str, key: str, value: str, depth: int) -> Node:
    if key.startswith("_has:"):
        return _has(type_, key, value, depth)
    head, dot, rest = key.partition(".")
    code, _, modifier = head.partition(":")
    if code == "_id":
        return _id(modifier, value)
    if code == "_lastUpdated":
        return _updated(modifier, value)
    if code == "_list":
        return InList(_plain_id(value))
    if code in UNSUPPORTED:
        raise _Unknown("This search parameter is not supported")
    param = _param(type_, code)
    if dot:
        return _chain(param, modifier, rest, value, depth)
    if modifier == "missing":
        return Missing(param, _boolean(value))
    return _test(param, modifier or None, value)


def _param(type_: str, code: str) -> SearchParam:
    param = parameters_for(type_).get(code)
    if param is None or param.type == "special" or code in skipped_for(type_):
        raise _Unknown("Unknown or unsupported search parameter for this resource type")
    return param


def _test(param: SearchParam, modifier: str | None, value: str) -> Test:
    if modifier is not None and TYPE_NAME.fullmatch(modifier) and param.type == "reference":
        if modifier not in param.target:
            raise _incorrect("The reference modifier names a type the parameter cannot target")
        return Test(param, None, tuple(_typed_reference(modifier, v) for v in split_values(value)))
    if modifier is not None and modifier not in MODIFIERS.get(param.type, ()):
        raise RempartError(Category.INCORRECT, "Unsupported search modifier", code="not-supported")
    if modifier in ("in", "not-in"):
        return _in_value_set(param, modifier, value)
    if modifier in ("identifier", "of-type"):
        return _derived_token(param, modifier, value)
    values = tuple(parse_value(param, modifier, part) for part in split_values(value))
    return Test(param, modifier, values)


def _in_value_set(param: SearchParam, modifier: str, url: str) -> Test:
    """``code:in=ValueSet-url``: any code of the value set (``:not-in``: none of them).
    The value sets known are the R4 ones that can be enumerated (bindings table)."""
    members = value_set(url.split("|", 1)[0])
    if members is None:
        raise RempartError(
            Category.INCORRECT, "Unknown value set for :in or :not-in", code="not-supported"
        )
    codes = tuple(
        TokenQ(system, code, or_no_system=True)
        for system, codes in members.items()
        for code in sorted(codes)
    )
    return Test(param, "not" if modifier == "not-in" else None, codes)


def _derived_token(param: SearchParam, modifier: str, value: str) -> Test:
    """``subject:identifier=system|value`` and ``identifier:of-type=system|code|value``,
    indexed as tokens of the parameters ``subject:identifier`` and ``identifier:of-type``."""
    derived = SearchParam(f"{param.code}:{modifier}", "token", param.expression)
    values: list[TokenQ] = []
    for part in split_values(value):
        if modifier == "of-type":
            pieces = unescaped_split(part, "|")
            if len(pieces) != 3 or not all(pieces):
                raise _incorrect(":of-type takes system|code|value")
            part = f"{pieces[0]}|{pieces[1]}\\|{pieces[2]}"
        token = parse_value(derived, None, part)
        assert isinstance(token, TokenQ)
        values.append(token)
    return Test(derived, None, tuple(values))


def _typed_reference(type_: str, value: str) -> ReferenceQ:
    if "/" in value:
        raise _incorrect("With a type modifier the reference value is a plain id")
    return ReferenceQ(type_, _plain_id(value))


def _chain(param: SearchParam, modifier: str, rest: str, value: str, depth: int) -> Node:
    if param.type != "reference":
        raise _incorrect("Only reference parameters can be chained")
    if depth <= 0:
        raise _incorrect("The chain is too deep")
    if modifier:
        if modifier not in param.target:
            raise _incorrect("The chain names a type the parameter cannot target")
        return Chain(param, modifier, _node(modifier, rest, value, depth - 1))
    code = rest.split(".", 1)[0].split(":", 1)[0]
    targets = [t for t in param.target if code.startswith("_") or code in parameters_for(t)]
    if not targets:
        raise _Unknown("Unknown search parameter in the chain")
    chains = tuple(Chain(param, t, _node(t, rest, value, depth - 1)) for t in targets)
    return chains[0] if len(chains) == 1 else AnyOf(chains)


def _has(type_: str, key: str, value: str, depth: int) -> Node:
    parts = key.split(":", 3)
    if len(parts) != 4 or depth <= 0:
        raise _incorrect("_has is written _has:Type:reference:parameter")
    _, source, code, rest = parts
    if not TYPE_NAME.fullmatch(source) or not parameters_for(source):
        raise _Unknown("Unknown resource type in _has")
    param = _param(source, code)
    if param.type != "reference" or (param.target and type_ not in param.target):
        raise _incorrect("The _has parameter does not refer to this resource type")
    return Has(source, param, _node(source, rest, value, depth - 1))


def _id(modifier: str, value: str) -> Node:
    if modifier not in ("", "not", "missing"):
        raise RempartError(Category.INCORRECT, "Unsupported search modifier", code="not-supported")
    if modifier == "missing":
        return IdIn((), negate=not _boolean(value))  # every resource has an id
    return IdIn(tuple(_plain_id(v) for v in split_values(value)), negate=modifier == "not")


def _updated(modifier: str, value: str) -> Node:
    if modifier:
        raise RempartError(Category.INCORRECT, "Unsupported search modifier", code="not-supported")
    return Updated(tuple(parse_date(part) for part in split_values(value)))


def _plain_id(value: str) -> str:
    id_ = value.rsplit("/", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", id_):
        raise _incorrect("Invalid resource id in a search value")
    return id_


def _boolean(value: str) -> bool:
    if value not in ("true", "false"):
        raise _incorrect(":missing takes true or false")
    return value == "true"


def _sort(types: Sequence[str], params: Sequence[tuple[str, str]]) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for key, value in params:
        if key == "_sort":
            keys += [_sort_key(types, part.strip()) for part in value.split(",") if part.strip()]
    return tuple(keys)


def _sort_key(types: Sequence[str], text: str) -> SortKey:
    descending = text.startswith("-")
    code = text.removeprefix("-")
    if code in ("_id", "_lastUpdated"):
        return SortKey(code, "special", descending)
    param = parameters_for(types[0]).get(code) if len(types) == 1 else None
    if param is None or param.type in ("composite", "special"):
        raise _incorrect("Unknown or unsortable _sort parameter")
    return SortKey(code, param.type, descending)


def _count(params: Sequence[tuple[str, str]], limits: Limits) -> int:
    value = _last(params, "_count")
    if value is None:
        return limits.default_count
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise _incorrect("_count must be a non-negative integer")
    return min(int(value), limits.max_count)


def _summary(params: Sequence[tuple[str, str]]) -> str | None:
    value = _choice(params, "_summary", SUMMARIES, "")
    return value or None


def _elements(params: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    names: list[str] = []
    for key, value in params:
        if key == "_elements":
            names += [part.strip() for part in value.split(",") if part.strip()]
    if any(not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,63}(\[x\])?", name) for name in names):
        raise _incorrect("_elements lists element names separated by commas")
    return tuple(names)


def _includes(params: Sequence[tuple[str, str]]) -> tuple[Include, ...]:
    found: list[Include] = []
    for key, value in params:
        name, _, modifier = key.partition(":")
        if name in ("_include", "_revinclude"):
            if modifier not in ("", "iterate", "recurse"):
                raise _incorrect("_include and _revinclude take only the :iterate modifier")
            found.append(_include(value, reverse=name == "_revinclude", iterate=bool(modifier)))
    return tuple(found)


def _include(value: str, *, reverse: bool, iterate: bool) -> Include:
    if value == "*":
        return Include("*", "*", None, reverse, iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not TYPE_NAME.fullmatch(parts[0]):
        raise _incorrect("_include is written Type:parameter[:targetType]")
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if code != "*":
        param = parameters_for(source).get(code)
        if param is None or param.type != "reference":
            raise _incorrect("_include names a reference parameter of the type")
        if target is not None and target not in param.target:
            raise _incorrect("_include names a target type the parameter cannot refer to")
    return Include(source, code, target, reverse, iterate)


def _choice(
    params: Sequence[tuple[str, str]], name: str, allowed: Sequence[str], default: str
) -> str:
    value = _last(params, name)
    if value is None:
        return default
    if value not in allowed:
        raise _incorrect(f"{name} takes one of: {', '.join(allowed)}")
    return value


def _last(params: Sequence[tuple[str, str]], name: str) -> str | None:
    found = [value for key, value in params if key == name]
    return found[-1] if found else None


def _safe_name(key: str) -> str:
    """A parameter name fit to report back: letters, digits and ``_-.:`` only, bounded."""
    return re.sub(r"[^A-Za-z0-9_\-.:]", "?", key[:80])


def _incorrect(message: str) -> RempartError:
    return RempartError(Category.INCORRECT, message)
