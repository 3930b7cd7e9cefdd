"""The values a resource is indexed by, per search parameter (FHIR R4 §3.1.1.5).

:func:`extract` evaluates every search parameter of the resource's type and turns the
selected elements into typed index values, as §3.1.1.5 reads each parameter type:

- string (§3.1.1.5.13): the text, normalized (lower case, accents removed), and raw;
  a HumanName or Address gives each of its parts;
- token (§3.1.1.5.6): ``(system, code)`` from a Coding, CodeableConcept, Identifier or
  ContactPoint (its ``system`` is ``phone``, ``email``...), or a code, boolean or string;
- reference (§3.1.1.5.7): ``(type, id)`` from ``Reference.reference``, with the URL when
  it is absolute; a canonical or uri gives its URL;
- date (§3.1.1.5.9): a ``[start, end)`` period in UTC microseconds since 1970, from a
  date, dateTime, instant, Period or Timing.event, the precision giving the width;
- number, quantity (§3.1.1.5.8, §3.1.1.5.10): ``Decimal`` values, a Range giving both
  bounds, with the quantity's system, code and unit;
- uri (§3.1.1.5.11): the text; composite (§3.1.1.5.12): the product of its components.

Expressions are compiled by :mod:`.fhirpath_compile` when they can be, evaluated by
fhirpathpy otherwise. ``special`` parameters and composites whose components cannot be
compiled are skipped (:func:`skipped_for` says which).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import product
from types import MappingProxyType
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from rempart.errors import RempartError
from rempart.fhir.dates import parse_period
from rempart.fhir.search.fhirpath_compile import (
    REFERENCE,
    Nodes,
    NotCompiled,
    Step,
    compile_branch,
    fhirpathpy_expression,
    split_union,
)
from rempart.fhir.search.parameters import SearchParam, parameters_for

Select = Callable[[dict[str, Any]], Nodes]


Composite = tuple[tuple[Step, tuple[Step, ...]], ...]  # per branch: one step per component


@dataclass(frozen=True, slots=True)
class Extractor:
    """How to find one parameter's values in a resource of one type."""

    param: SearchParam
    select: Select  # the elements the expression selects
    compiled: bool
    composite: Composite = ()

    def values(self, resource: dict[str, Any]) -> Iterator[IndexValue]:
        param = self.param
        if not self.composite:
            for node in self.select(resource):
                yield from typed_values(param.code, param.type, node)
            return
        for branch, components in self.composite:
            for node in branch([resource]):
                yield from composite_values(param, [step([node]) for step in components])


def extract(resource: dict[str, Any]) -> list[IndexValue]:
    """Every index value of ``resource``, without duplicates, parameter by parameter."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return []
    return extract_with(resource, extractors_for(resource_type))


def extract_with(resource: dict[str, Any], extractors: Iterable[Extractor]) -> list[IndexValue]:
    """The index values the given extractors find in ``resource``."""
    found: dict[IndexValue, None] = {}
    for extractor in extractors:
        found.update(dict.fromkeys(extractor.values(resource)))
    return list(found)


def extractors_for(type_: str) -> tuple[Extractor, ...]:
    """The extractors of a type's parameters, compiled where possible; built once."""
    return build_extractors(type_, compiled=True)[0]


def skipped_for(type_: str) -> Mapping[str, str]:
    """The parameters of a type that are not indexed, with the reason."""
    return build_extractors(type_, compiled=True)[1]


@cache
def build_extractors(
    type_: str, *, compiled: bool
) -> tuple[tuple[Extractor, ...], Mapping[str, str]]:
    """Extractors for a type and what was skipped; fhirpathpy alone unless ``compiled``.

    Composites are always compiled: fhirpathpy cannot evaluate a component on its own.
    """
    extractors: list[Extractor] = []
    skipped: dict[str, str] = {}
    for param in parameters_for(type_).values():
        try:
            extractors.append(_build(param, compiled))
        except NotCompiled as reason:
            skipped[param.code] = str(reason)
    return tuple(extractors), MappingProxyType(skipped)


def _build(param: SearchParam, compiled: bool) -> Extractor:
    if param.type == "special":
        raise NotCompiled("special parameters are searched by their own rules")
    if param.type == "composite":
        return _composite(param)
    if compiled:
        try:
            return Extractor(param, compiled_select(param.expression), compiled=True)
        except NotCompiled:
            pass
    return Extractor(param, engine_select(param.expression), compiled=False)


def compiled_select(expression: str) -> Select:
    """The compiled union of an expression's branches; raises :class:`NotCompiled`."""
    step = _union(expression, None)
    return lambda resource: step([resource])


def engine_select(expression: str) -> Select:
    """The expression evaluated by fhirpathpy; raises :class:`NotCompiled` if it cannot."""
    rewritten = " | ".join(fhirpathpy_expression(b) for b in split_union(expression))
    try:
        evaluate = fhirpath_compile(rewritten, models["r4"])
    except Exception as error:  # noqa: BLE001 - fhirpathpy raises bare Exceptions
        raise NotCompiled(f"fhirpathpy: {error}") from None

    def select(resource: dict[str, Any]) -> Nodes:
        try:
            return list(evaluate(resource, {}))
        except Exception:  # noqa: BLE001 - e.g. a function fhirpathpy lacks: no values
            return []

    return select


def _composite(param: SearchParam) -> Extractor:
    """A composite: each component is compiled from where its branch ends."""
    composite = []
    for branch in split_union(param.expression):
        step, path = compile_branch(branch, None)
        composite.append((step, tuple(_union(part.expression, path) for part in param.components)))
    return Extractor(param, _no_select, compiled=True, composite=tuple(composite))


def _no_select(resource: dict[str, Any]) -> Nodes:
    return []  # a composite's values are its components'


def _union(expression: str, path: str | None) -> Step:
    steps = [compile_branch(branch, path)[0] for branch in split_union(expression)]
    if len(steps) == 1:
        return steps[0]
    return lambda nodes: [node for step in steps for node in step(nodes)]


# --- index values -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StringValue:
    param: str
    normalized: str  # lower case, without accents
    raw: str


@dataclass(frozen=True, slots=True)
class TokenValue:
    param: str
    system: str | None
    code: str
    text: str | None = None  # normalized display and CodeableConcept.text, for ``:text``


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    param: str
    type: str | None
    id: str | None
    url: str | None  # an absolute, urn or canonical reference


@dataclass(frozen=True, slots=True)
class DateValue:
    param: str
    start: int  # UTC microseconds since 1970, included
    end: int  # excluded


@dataclass(frozen=True, slots=True)
class NumberValue:
    param: str
    value: Decimal


@dataclass(frozen=True, slots=True)
class QuantityValue:
    param: str
    low: Decimal | None  # a Quantity has low == high; a Range may lack either
    high: Decimal | None
    system: str | None
    code: str | None
    unit: str | None


@dataclass(frozen=True, slots=True)
class UriValue:
    param: str
    uri: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    param: str
    parts: tuple[IndexValue, ...]


IndexValue = (
    StringValue
    | TokenValue
    | ReferenceValue
    | DateValue
    | NumberValue
    | QuantityValue
    | UriValue
    | CompositeValue
)


def typed_values(code: str, type_: str, node: Any) -> Iterator[IndexValue]:
    """The index values of one selected element for a parameter of the given type."""
    if isinstance(node, dict) and _is_extension(node):
        node = _extension_value(node)  # a parameter on an extension indexes its value
    reader = _READERS.get(type_)
    return reader(code, node) if reader is not None and node is not None else iter(())


def composite_values(param: SearchParam, parts: list[Nodes]) -> Iterator[CompositeValue]:
    """The product of the components' values (§3.1.1.5.12)."""
    typed = [
        [value for node in nodes for value in typed_values(part.code, part.type, node)]
        for part, nodes in zip(param.components, parts, strict=True)
    ]
    for combination in product(*typed):
        yield CompositeValue(param.code, combination)


def _is_extension(node: dict[str, Any]) -> bool:
    return "url" in node and all(key in _EXTENSION_KEYS or key[:5] == "value" for key in node)


def _extension_value(extension: dict[str, Any]) -> Any:
    for key, value in extension.items():
        if key.startswith("value"):
            return value
    return None


def _strings(code: str, node: Any) -> Iterator[IndexValue]:
    if isinstance(node, str):
        yield StringValue(code, normalize(node), node)
    elif isinstance(node, dict):
        for key in _STRING_PARTS:
            for text in _as_list(node.get(key)):
                if isinstance(text, str):
                    yield StringValue(code, normalize(text), text)


def normalize(text: str) -> str:
    """Lower case without accents, as string search compares (§3.1.1.5.13)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _tokens(code: str, node: Any) -> Iterator[IndexValue]:
    if isinstance(node, bool):
        yield TokenValue(code, None, "true" if node else "false")
    elif isinstance(node, str):
        yield TokenValue(code, None, node)
    elif isinstance(node, dict):
        if "coding" in node:
            concept_text = node.get("text")
            for coding in _as_list(node["coding"]):
                yield from _coding(code, coding, concept_text)
        key = "code" if "code" in node else "value"  # Coding; Identifier, ContactPoint
        value, system = node.get(key), node.get("system")
        if isinstance(value, str):
            text = _token_text(node.get("display"), None)
            yield TokenValue(code, system if isinstance(system, str) else None, value, text)
            if key == "value" and isinstance(node.get("type"), dict):
                yield from _of_type(code, node["type"], value, system)


def _of_type(code: str, type_: dict[str, Any], value: str, system: Any) -> Iterator[IndexValue]:
    """``identifier:of-type``: the identifier's type coding with its value (§3.1.1.5.6).
    Not for person identifiers (INS): their value is only ever indexed as a keyed hash."""
    if system in BLIND_SYSTEMS:
        return
    for coding in _as_list(type_.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            type_system = coding.get("system")
            type_system = type_system if isinstance(type_system, str) else None
            yield TokenValue(f"{code}:of-type", type_system, f"{coding['code']}|{value}")


def _coding(code: str, coding: Any, concept_text: Any) -> Iterator[IndexValue]:
    if isinstance(coding, dict) and isinstance(coding.get("code"), str):
        system = coding.get("system")
        text = _token_text(coding.get("display"), concept_text)
        yield TokenValue(code, system if isinstance(system, str) else None, coding["code"], text)


def _token_text(display: Any, concept_text: Any) -> str | None:
    texts = [t for t in (concept_text, display) if isinstance(t, str)]
    return normalize(" ".join(texts)) if texts else None


def _references(code: str, node: Any) -> Iterator[IndexValue]:
    if isinstance(node, str):
        yield ReferenceValue(code, None, None, node)  # a canonical or uri
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("resourceType"), str):
        yield ReferenceValue(code, node["resourceType"], node.get("id"), None)
        return
    if isinstance(node.get("identifier"), dict):
        yield from _reference_identifier(code, node["identifier"])
    reference = node.get("reference")
    if isinstance(reference, str):
        match = REFERENCE.match(reference)
        absolute = ":" in reference
        if match:
            yield ReferenceValue(code, match[1], match[2], reference if absolute else None)
        elif absolute:
            yield ReferenceValue(code, None, None, reference)  # urn:uuid:..., urn:oid:...


def _reference_identifier(code: str, identifier: dict[str, Any]) -> Iterator[IndexValue]:
    """``subject:identifier=system|value``: a reference by business identifier."""
    value, system = identifier.get("value"), identifier.get("system")
    if isinstance(value, str):
        yield TokenValue(f"{code}:identifier", system if isinstance(system, str) else None, value)


def _dates(code: str, node: Any) -> Iterator[IndexValue]:
    try:
        if isinstance(node, str):
            start, end = parse_period(node)
            yield DateValue(code, _micros(start), _micros(end))
        elif isinstance(node, dict) and ("start" in node or "end" in node):
            yield DateValue(code, _bound(node.get("start"), 0), _bound(node.get("end"), 1))
        elif isinstance(node, dict):
            for event in _as_list(node.get("event")):
                yield from _dates(code, event)
    except RempartError:
        return  # not a date: nothing to index


def _bound(value: Any, side: int) -> int:
    if not isinstance(value, str):
        return _FOREVER[side]
    return _micros(parse_period(value)[side])


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _numbers(code: str, node: Any) -> Iterator[IndexValue]:
    number = _decimal(node.get("value") if isinstance(node, dict) else node)
    if number is not None:
        yield NumberValue(code, number)


def _quantities(code: str, node: Any) -> Iterator[IndexValue]:
    if not isinstance(node, dict):
        return
    low = node.get("low") if "low" in node or "high" in node else node
    high = node.get("high") if "low" in node or "high" in node else node
    unit = next((q for q in (low, high) if isinstance(q, dict)), {})
    bounds = _decimal(_get(low, "value")), _decimal(_get(high, "value"))
    if bounds != (None, None):
        system = unit.get("system", _CURRENCY if "currency" in unit else None)
        unit_code = unit.get("code", unit.get("currency"))
        yield QuantityValue(code, *bounds, system, unit_code, unit.get("unit"))


def _uris(code: str, node: Any) -> Iterator[IndexValue]:
    if isinstance(node, str):
        yield UriValue(code, node)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


BLIND_SYSTEMS = frozenset({"urn:oid:1.2.250.1.213.1.4.8"})
"""Person identifier systems (the French INS), indexed only as keyed hashes."""
_STRING_PARTS = (
    *("text", "family", "given", "prefix", "suffix"),  # HumanName
    *("line", "city", "district", "state", "postalCode", "country"),  # Address
)
_EXTENSION_KEYS = ("id", "url", "extension")
_CURRENCY = "urn:iso:std:iso:4217"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FOREVER = (_micros(datetime.min.replace(tzinfo=UTC)), _micros(datetime.max.replace(tzinfo=UTC)))
_READERS: dict[str, Callable[[str, Any], Iterator[IndexValue]]] = {
    "string": _strings,
    "token": _tokens,
    "reference": _references,
    "date": _dates,
    "number": _numbers,
    "quantity": _quantities,
    "uri": _uris,
}
