"""The FHIR R4 compartments and their members (FHIR R4 §3.2.1 Compartments, §2.37).

Read once, on first use, from ``tables/compartments.json``, which
``scripts/derive_compartments.py`` derives from the official R4 CompartmentDefinitions.
For each compartment type, a member resource type comes with the search parameters
that link one of its resources to the compartment's focal resource (for instance an
Observation is in a Patient's compartment through ``subject`` or ``performer``).

The focal resource itself (the ``{def}`` marker of the definitions) is not listed: it
is in its own compartment by identity, not through a search parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType

_EMPTY: Mapping[str, tuple[str, ...]] = MappingProxyType({})


def compartment_types() -> tuple[str, ...]:
    """The compartment types of FHIR R4, sorted: Device, Encounter, Patient, ..."""
    return tuple(sorted(_table()))


def members(compartment: str) -> Mapping[str, tuple[str, ...]]:
    """Member resource type -> linking parameters; empty for an unknown compartment."""
    return _table().get(compartment, _EMPTY)


def params_for(compartment: str, resource_type: str) -> tuple[str, ...]:
    """The parameters linking ``resource_type`` to ``compartment``; empty if none."""
    return members(compartment).get(resource_type, ())


@cache
def _table() -> Mapping[str, Mapping[str, tuple[str, ...]]]:
    raw = json.loads(files("rempart.fhir.tables").joinpath("compartments.json").read_text("utf-8"))
    return MappingProxyType(
        {
            code: MappingProxyType({type_: tuple(params) for type_, params in by_type.items()})
            for code, by_type in raw["compartments"].items()
        }
    )
