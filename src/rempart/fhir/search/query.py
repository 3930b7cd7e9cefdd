"""A parsed FHIR search, as the store compiles it (FHIR R4 §3.1.1).

:mod:`.parse` builds a :class:`SearchQuery` from the request's parameters; the storage
adapters turn it into SQL. Everything here is plain data: the criteria of one query
are ANDed, the values of one criterion ORed (§3.1.1.3, "composite" search rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from rempart.fhir.search.parameters import SearchParam

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True, slots=True)
class StringQ:
    normalized: str
    raw: str


@dataclass(frozen=True, slots=True)
class TokenQ:
    system: str | None
    code: str | None
    no_system: bool = False
    """``|code``: the token must have no system."""
    or_no_system: bool = False
    """``:in``: a plain ``code`` element (stored without system) matches on its code."""


@dataclass(frozen=True, slots=True)
class ReferenceQ:
    type: str | None
    id: str | None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class DateQ:
    prefix: str
    start: int  # UTC µs, included
    end: int  # excluded


@dataclass(frozen=True, slots=True)
class NumberQ:
    prefix: str
    value: Decimal
    low: Decimal  # the implicit range of the value's significant digits
    high: Decimal
    system: str | None = None  # quantities only
    code: str | None = None


@dataclass(frozen=True, slots=True)
class UriQ:
    uri: str


@dataclass(frozen=True, slots=True)
class CompositeQ:
    parts: tuple[Value, ...]


Value = StringQ | TokenQ | ReferenceQ | DateQ | NumberQ | UriQ | CompositeQ


@dataclass(frozen=True, slots=True)
class Test:
    """A parameter of the resource matches one of ``values`` (with ``modifier``)."""

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Missing:
    """``param:missing=true|false`` (§3.1.1.5.x ``:missing``)."""

    param: SearchParam
    missing: bool


@dataclass(frozen=True, slots=True)
class IdIn:
    """``_id``: the logical id is one of ``ids``."""

    ids: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Updated:
    """``_lastUpdated``: the version's time matches one of ``values``."""

    values: tuple[DateQ, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """``param:target.inner``: the referenced ``target`` resource matches ``inner``."""

    param: SearchParam
    target: str
    inner: Node


@dataclass(frozen=True, slots=True)
class Has:
    """``_has:source:param:inner``: some ``source`` referring here by ``param`` matches."""

    source: str
    param: SearchParam
    inner: Node


@dataclass(frozen=True, slots=True)
class AnyOf:
    """One of several criteria (a chain whose target type the caller left open)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every one of several criteria (one scope's ``?param=value`` restriction)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class InList:
    """``_list``: the resource is an item of the List ``list_id``."""

    list_id: str


@dataclass(frozen=True, slots=True)
class InCompartment:
    """Compartment search (§3.1.1.1): the resource belongs to ``type/id``'s compartment."""

    type: str
    id: str


Node = Test | Missing | IdIn | Updated | Chain | Has | AnyOf | AllOf | InList | InCompartment


@dataclass(frozen=True, slots=True)
class Include:
    """``_include`` (``reverse`` False) or ``_revinclude``: ``source:param[:target]``."""

    source: str
    param: str  # a reference parameter of ``source``, or "*"
    target: str | None
    reverse: bool
    iterate: bool


@dataclass(frozen=True, slots=True)
class SortKey:
    param: str  # a parameter code, ``_id`` or ``_lastUpdated``
    type: str  # its search type
    descending: bool


@dataclass(frozen=True)
class SearchQuery:
    types: tuple[str, ...]
    """The resource types searched; empty means every type (system search)."""
    where: tuple[Node, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    total: str = "none"  # none, estimate, accurate
    summary: str | None = None  # true, text, data, count, false
    elements: tuple[str, ...] = ()
    includes: tuple[Include, ...] = ()
    ignored: tuple[str, ...] = field(default=())
    """Parameters ignored under lenient handling, reported to the caller."""
    since: int | None = None
    """$everything's ``_since``: versions updated at or after (µs)."""
