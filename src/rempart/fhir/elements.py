"""The result parameters ``_summary`` and ``_elements`` (FHIR R4 §3.1.1.5.8, §3.1.1.5.9).

See http://hl7.org/fhir/R4/search.html#summary and #elements. A resource is reduced to
a subset of its top-level elements:

- ``_summary=true``: the elements marked ``isSummary`` in the base definition;
- ``_summary=text``: ``text``, ``id``, ``meta`` and the top-level mandatory elements;
- ``_summary=data``: everything but ``text``;
- ``_elements=a,b``: the listed elements, with ``id``, ``meta`` and the mandatory ones.

``resourceType``, ``id``, ``meta`` and the mandatory elements are always kept. A choice
element is named by its prefix (``value`` or ``value[x]`` for ``valueQuantity``), and a
primitive's ``_name`` companion follows ``name``. A resource that lost elements carries
the ``SUBSETTED`` tag so that it is not mistaken for the whole resource. The summary,
mandatory and choice elements come from ``tables/summary_elements.json``, which
``scripts/derive_summary_elements.py`` derives from the R4 StructureDefinitions.

Nothing here mutates its input; unchanged values are shared with it, not copied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from rempart.errors import Category, RempartError

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
SUMMARY_MODES = ("true", "text", "data", "false")  # "count" is answered by the search

_ALWAYS = frozenset({"resourceType", "id", "meta"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}(\[x\])?")

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Elements:
    """The top-level elements of one resource type that matter here."""

    summary: frozenset[str]
    mandatory: frozenset[str]
    choices: tuple[str, ...]  # prefixes of the choice elements: ``value`` for value[x]


def summarize(resource: Resource, mode: str) -> Resource:
    """The resource as ``_summary=mode`` returns it (``true``, ``text``, ``data``, ``false``)."""
    if mode not in SUMMARY_MODES:
        raise RempartError(Category.INCORRECT, "_summary must be true, text, data or false")
    if mode == "false":
        return dict(resource)
    if mode == "data":
        return _subset(resource, lambda name: name != "text")
    elements = _elements_of(resource)
    keep = _ALWAYS | elements.mandatory
    keep |= {"text"} if mode == "text" else elements.summary
    return _subset(resource, keep.__contains__)


def select_elements(resource: Resource, elements: Iterable[str]) -> Resource:
    """The resource as ``_elements`` returns it; unknown element names are ignored."""
    wanted = {name.removesuffix("[x]") for name in elements}
    keep = _ALWAYS | _elements_of(resource).mandatory | wanted
    return _subset(resource, keep.__contains__)


def parse_elements(value: str) -> tuple[str, ...]:
    """The element names of an ``_elements`` value, without duplicates, in order."""
    names = [part.strip() for part in value.split(",")]
    if not all(_NAME.fullmatch(name) for name in names):
        # The value is untrusted: the message does not repeat it.
        raise RempartError(
            Category.INCORRECT, "_elements must be a comma-separated list of element names"
        )
    return tuple(dict.fromkeys(names))


def _subset(resource: Resource, keep: Callable[[str], bool]) -> Resource:
    """The resource with the top-level elements ``keep(name)`` accepts, tagged if reduced."""
    elements = _elements_of(resource)
    kept = {key: value for key, value in resource.items() if keep(_element(key, elements))}
    return _tagged(kept) if len(kept) < len(resource) else kept


def _element(key: str, elements: _Elements) -> str:
    """The element a JSON key belongs to: ``valueQuantity`` and ``_valueString`` -> ``value``."""
    name = key.removeprefix("_")
    for prefix in elements.choices:
        # No R4 resource has an element named like a choice prefix + a capital letter,
        # so a match can only be one of the choice's types.
        if name.startswith(prefix) and name[len(prefix) : len(prefix) + 1].isupper():
            return prefix
    return name


def _tagged(resource: Resource) -> Resource:
    """A copy of ``resource`` whose ``meta.tag`` holds SUBSETTED once, placed after ``id``."""
    meta = resource.get("meta")
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    tags = list(meta.get("tag") or [])
    if not any(_is_subsetted(tag) for tag in tags):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    head: Resource = {k: resource[k] for k in ("resourceType", "id") if k in resource}
    rest = {key: value for key, value in resource.items() if key not in head and key != "meta"}
    return {**head, "meta": meta, **rest}


def _is_subsetted(tag: Any) -> bool:
    if not isinstance(tag, Mapping):
        return False
    return tag.get("system") == SUBSETTED["system"] and tag.get("code") == SUBSETTED["code"]


def _elements_of(resource: Resource) -> _Elements:
    """The elements of the resource's type; those of Resource for an unknown type."""
    table = _table()
    type_ = resource.get("resourceType")
    return table[type_] if isinstance(type_, str) and type_ in table else table["Resource"]


@cache
def _table() -> dict[str, _Elements]:
    raw = json.loads(
        files("rempart.fhir.tables").joinpath("summary_elements.json").read_text("utf-8")
    )
    return {
        type_: _Elements(
            frozenset(entry["summary"]), frozenset(entry["mandatory"]), tuple(entry["choices"])
        )
        for type_, entry in raw["types"].items()
    }
