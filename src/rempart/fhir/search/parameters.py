"""The FHIR R4 search parameters of each resource type (FHIR R4 §3.1.1, §2.38 SearchParameter).

Read once, on first use, from ``tables/search_parameters.json``, which
``scripts/derive_search_parameters.py`` derives from the official R4 definitions. Each
parameter's ``expression`` holds only the FHIRPath branches for its resource type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter: its code, type, and path from the composite."""

    code: str
    type: str
    expression: str


@dataclass(frozen=True, slots=True)
class SearchParam:
    """A search parameter of one resource type."""

    code: str
    type: str  # number, date, string, token, reference, composite, quantity, uri, special
    expression: str
    target: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()


def parameters_for(type_: str) -> dict[str, SearchParam]:
    """The parameters of a resource type by code; empty for an unknown type."""
    return _table().get(type_, {})


def resource_types() -> list[str]:
    """Every resource type of the table."""
    return sorted(_table())


@cache
def _table() -> dict[str, dict[str, SearchParam]]:
    raw = json.loads(
        files("rempart.fhir.tables").joinpath("search_parameters.json").read_text("utf-8")
    )
    return {
        type_: {code: _param(code, entry) for code, entry in by_code.items()}
        for type_, by_code in raw["types"].items()
    }


def _param(code: str, entry: dict[str, Any]) -> SearchParam:
    components = tuple(
        Component(part["code"], part["type"], part["expression"])
        for part in entry.get("components", ())
    )
    return SearchParam(
        code, entry["type"], entry["expression"], tuple(entry.get("target", ())), components
    )
