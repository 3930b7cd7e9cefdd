"""Typed index values: what one selected element is found by (FHIR R4 §3.1.1.5).

:func:`typed_values` reads an element the way its parameter's type searches it (string,
token, reference, date, number, quantity, uri); :func:`composite_values` combines the
components of a composite. :mod:`.extract` selects the elements.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product
from typing import Any

from rempart.errors import RempartError
from rempart.fhir.dates import parse_period
from rempart.fhir.search.fhirpath_compile import REFERENCE, Nodes
from rempart.fhir.search.parameters import SearchParam


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
            yield DateValue(code, micros(start), micros(end))
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
    return micros(parse_period(value)[side])


def micros(moment: datetime) -> int:
    """UTC microseconds since 1970, as the index stores dates."""
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
_FOREVER = (micros(datetime.min.replace(tzinfo=UTC)), micros(datetime.max.replace(tzinfo=UTC)))
_READERS: dict[str, Callable[[str, Any], Iterator[IndexValue]]] = {
    "string": _strings,
    "token": _tokens,
    "reference": _references,
    "date": _dates,
    "number": _numbers,
    "quantity": _quantities,
    "uri": _uris,
}
