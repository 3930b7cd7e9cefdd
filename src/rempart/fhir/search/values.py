"""Typed search values (FHIR R4 §3.1.1.4 prefixes, §3.1.1.5 parameter types).

Number and quantity values name the range of their significant digits (``100`` is
[99.5, 100.5), ``1.00`` is [0.995, 1.005)); dates the period of their precision
(``2024-03`` is the month), in UTC microseconds like the index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from rempart.errors import Category, RempartError
from rempart.fhir.dates import parse_period
from rempart.fhir.search.extract import normalize
from rempart.fhir.search.fhirpath_compile import REFERENCE
from rempart.fhir.search.parameters import Component, SearchParam
from rempart.fhir.search.query import (
    PREFIXES,
    CompositeQ,
    DateQ,
    NumberQ,
    ReferenceQ,
    StringQ,
    TokenQ,
    UriQ,
    Value,
)
from rempart.fhir.search.typed import micros

MAX_VALUE = 1024
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?")


def split_values(text: str, separator: str = ",") -> list[str]:
    """Split on unescaped ``separator``, which ``\\`` escapes; other escapes are kept."""
    if len(text) > MAX_VALUE:
        raise _incorrect("A search value is too long")
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char if char == separator else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_value(param: SearchParam | Component, modifier: str | None, text: str) -> Value:
    """One value of a parameter of ``param.type``."""
    if param.type == "composite" and isinstance(param, SearchParam):
        return _composite(param, text)
    parser = _PARSERS.get(param.type)
    if parser is None:
        raise _incorrect("This parameter cannot be searched")
    return parser(text, modifier)


def _composite(param: SearchParam, text: str) -> CompositeQ:
    parts = unescaped_split(text, "$")
    if len(parts) != len(param.components):
        raise _incorrect("A composite value has one part per component, joined by $")
    return CompositeQ(
        tuple(parse_value(c, None, part) for c, part in zip(param.components, parts, strict=True))
    )


def unescaped_split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where an even number of backslashes precede it."""
    parts, start, escaped = [], 0, False
    for position, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(text[start:position])
            start = position + 1
    parts.append(text[start:])
    return parts


def _string(text: str, modifier: str | None) -> StringQ:
    if not text:
        raise _incorrect("A string search value is empty")
    raw = _unescape(text)
    return StringQ(normalize(raw), raw)


def _token(text: str, modifier: str | None) -> TokenQ:
    if modifier == "text":
        return TokenQ(None, normalize(_unescape(text)))
    parts = unescaped_split(text, "|")
    if len(parts) == 1:
        code = _unescape(parts[0])
        if not code:
            raise _empty()
        return TokenQ(None, code)
    if len(parts) != 2:
        raise _incorrect("A token is code, system|code, |code or system|")
    system, code = _unescape(parts[0]), _unescape(parts[1])
    if not system and not code:
        raise _empty()
    return TokenQ(system or None, code or None, no_system=not system)


def _reference(text: str, modifier: str | None) -> ReferenceQ:
    if not text:
        raise _empty()
    match = REFERENCE.match(text)
    absolute = ":" in text
    if match:
        return ReferenceQ(match[1], match[2], text if absolute else None)
    if absolute:
        return ReferenceQ(None, None, text)  # a canonical URL or urn
    if "/" in text or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", text):
        raise _incorrect("A reference is Type/id, id or an absolute URL")
    return ReferenceQ(None, text)


def _uri(text: str, modifier: str | None) -> UriQ:
    if not text:
        raise _empty()
    return UriQ(_unescape(text))


def parse_date(text: str, modifier: str | None = None) -> DateQ:
    prefix, rest = _prefix(text)
    try:
        start, end = parse_period(rest)
    except RempartError:
        raise _incorrect("A date is [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][zone]]]]") from None
    return DateQ(prefix, micros(start), micros(end))


def _number(text: str, modifier: str | None) -> NumberQ:
    prefix, rest = _prefix(text)
    value, low, high = _decimal_range(rest)
    return NumberQ(prefix, value, low, high)


def _quantity(text: str, modifier: str | None) -> NumberQ:
    parts = unescaped_split(text, "|")
    if len(parts) not in (1, 3):
        raise _incorrect("A quantity is [prefix]number[|system|code]")
    number = _number(parts[0], None)
    system = _unescape(parts[1]) or None if len(parts) == 3 else None
    code = _unescape(parts[2]) or None if len(parts) == 3 else None
    return NumberQ(number.prefix, number.value, number.low, number.high, system, code)


def _decimal_range(text: str) -> tuple[Decimal, Decimal, Decimal]:
    """The value and the range of its significant digits (§3.1.1.5.8)."""
    if not NUMBER.fullmatch(text):
        raise _incorrect("A number search value is not a number")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _incorrect("A number search value is not a number") from None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite by the pattern above
    half = Decimal(5).scaleb(exponent - 1)
    return value, value - half, value + half


def _prefix(text: str) -> tuple[str, str]:
    head = text[:2]
    if head in PREFIXES and len(text) > 2 and not text[2].isalpha():
        return head, text[2:]
    return "eq", text


def _unescape(text: str) -> str:
    return re.sub(r"\\([,$|\\])", r"\1", text)


def _empty() -> RempartError:
    return _incorrect("A search value is empty")


def _incorrect(message: str) -> RempartError:
    return RempartError(Category.INCORRECT, message)


_PARSERS: dict[str, Callable[[str, str | None], Value]] = {
    "string": _string,
    "token": _token,
    "reference": _reference,
    "date": parse_date,
    "number": _number,
    "quantity": _quantity,
    "uri": _uri,
}
