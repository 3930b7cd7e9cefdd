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

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from rempart.fhir.search.fhirpath_compile import (
    Nodes,
    NotCompiled,
    Step,
    compile_branch,
    fhirpathpy_expression,
    split_union,
)
from rempart.fhir.search.parameters import SearchParam, parameters_for
from rempart.fhir.search.typed import (
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
    composite_values,
    normalize,
    typed_values,
)

__all__ = [  # the typed values are re-exported: callers find them with the extractor
    "BLIND_SYSTEMS",
    "CompositeValue",
    "DateValue",
    "Extractor",
    "IndexValue",
    "NumberValue",
    "QuantityValue",
    "ReferenceValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "extract",
    "normalize",
    "skipped_for",
]

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
