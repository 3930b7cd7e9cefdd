"""Locating elements by a FHIRPath subset, for FHIRPath Patch (FHIR R4 §2.1.0.1 fhirpatch).

Only the shapes patch documents use: ``Type.elem.elem``, ``elem[n]``, ``first()``,
``last()`` and ``where()`` over ``and``-ed equalities of child fields with string,
boolean or number literals. The result is a list of locations (container and key),
so that operations can write there; a general FHIRPath engine only returns values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r"'(?:[^'\\]|\\.)*'"
_HEAD = re.compile(_IDENT)
_STEP = re.compile(rf"\.({_IDENT})(?:\(((?:[^()']|{_STRING})*)\))?|\[(\d+)\]")
_TEST = re.compile(
    rf"\s*({_IDENT}(?:\.{_IDENT})*)\s*=\s*({_STRING}|\d+(?:\.\d+)?|true\b|false\b)\s*"
)
_AND = re.compile(r"and\b")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_ESCAPES = {
    **{c: c for c in "'\"`\\/"},
    **{"f": "\f", "n": "\n", "r": "\r", "t": "\t"},
}
Literal = str | bool | Decimal


class Unsupported(Exception):
    """The path is outside the subset this module evaluates."""


@dataclass(frozen=True)
class Child:
    name: str


@dataclass(frozen=True)
class _Index:
    position: int


@dataclass(frozen=True)
class _Pick:
    last: bool


@dataclass(frozen=True)
class _Where:
    tests: tuple[tuple[tuple[str, ...], Literal], ...]


Step = Child | _Index | _Pick | _Where


def parse_path(text: str) -> list[Step]:
    text = text.strip()
    head = _HEAD.match(text)
    if head is None:
        raise Unsupported
    steps: list[Step] = [Child(head[0])]
    position = head.end()
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise Unsupported
        steps.append(_step(*match.group(1, 2, 3)))
        position = match.end()
    return steps


def _step(name: str | None, arguments: str | None, index: str | None) -> Step:
    if index is not None:
        return _Index(int(index))
    if name is None:
        raise Unsupported
    if arguments is None:
        return Child(name)
    if name in ("first", "last") and not arguments.strip():
        return _Pick(last=name == "last")
    if name == "where":
        return _Where(_tests(arguments))
    raise Unsupported


def _tests(arguments: str) -> tuple[tuple[tuple[str, ...], Literal], ...]:
    tests, position = [], 0
    while True:
        match = _TEST.match(arguments, position)
        if match is None:
            raise Unsupported
        tests.append((tuple(match[1].split(".")), _literal(match[2])))
        if match.end() == len(arguments):
            return tuple(tests)
        joined = _AND.match(arguments, match.end())
        if joined is None:
            raise Unsupported
        position = joined.end()


def _literal(text: str) -> Literal:
    if text.startswith("'"):
        return _ESCAPE.sub(_unescape, text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    return Decimal(text)


def _unescape(match: re.Match[str]) -> str:
    escape = match.group(1)
    if len(escape) == 5:
        return chr(int(escape[1:], 16))
    if escape not in _ESCAPES:
        raise Unsupported
    return _ESCAPES[escape]


@dataclass(frozen=True)
class Location:
    """Where a matched element lives: ``parent[name]`` or ``parent[name][index]``."""

    parent: dict[str, Any]
    name: str
    index: int | None
    path: str  # spelt as fhirkit spells issue paths: "Patient.name[0].given"

    @property
    def value(self) -> Any:
        held = self.parent[self.name]
        return held if self.index is None else held[self.index]

    @property
    def is_root(self) -> bool:
        return self.name == ""  # element names are never empty; see root


def root(doc: dict[str, Any]) -> Location:
    kind = doc.get("resourceType")
    return Location({"": doc}, "", None, kind if isinstance(kind, str) else "")


def evaluate(doc: dict[str, Any], steps: list[Step]) -> list[Location]:
    """The locations ``steps`` select; the head step is taken to name the resource."""
    locations = [root(doc)]
    for step in steps[1:]:
        locations = _apply_step(step, locations)
    return locations


def _apply_step(step: Step, locations: list[Location]) -> list[Location]:
    if isinstance(step, Child):
        return [child for found in locations for child in _children(found, step.name)]
    if isinstance(step, _Index):
        return locations[step.position : step.position + 1]
    if isinstance(step, _Pick):
        return locations[-1:] if step.last else locations[:1]
    return [found for found in locations if all(_holds(found.value, *t) for t in step.tests)]


def _children(location: Location, name: str) -> list[Location]:
    element = location.value
    # resourceType is JSON framing, not an element (FHIRPath cannot navigate to it).
    if not isinstance(element, dict) or name not in element or name == "resourceType":
        return []
    held, path = element[name], f"{location.path}.{name}"
    if isinstance(held, list):
        return [Location(element, name, i, f"{path}[{i}]") for i in range(len(held))]
    return [Location(element, name, None, path)]


def _holds(value: Any, fields: tuple[str, ...], literal: Literal) -> bool:
    found = [value]
    for name in fields:
        held = [item[name] for item in found if isinstance(item, dict) and name in item]
        found = [v for h in held for v in (h if isinstance(h, list) else [h])]
    # FHIRPath '=' between a collection of several items and a literal is not true.
    return len(found) == 1 and _equal(found[0], literal)


def _equal(value: Any, literal: Literal) -> bool:
    if isinstance(value, bool) or isinstance(literal, bool):
        return value is literal
    if isinstance(literal, Decimal):
        return isinstance(value, int | float | Decimal) and Decimal(str(value)) == literal
    return isinstance(value, str) and value == literal
