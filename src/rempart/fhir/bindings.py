"""Required terminology bindings of FHIR R4 (§4.1.5 binding strength ``required``).

fhirkit checks structure and datatypes but not terminology: it accepts a Patient.gender
of ``banana``. :func:`check_required_bindings` walks a resource's JSON with the table
that ``scripts/derive_fhir_tables.py`` derives from the R4 definitions
(``tables/required_bindings.json``) and reports every coded element whose value is not
in the value set its required binding names:

- a ``code`` must be one of the value set's codes (compared exactly, case included);
- a ``Coding`` must have a system and code of the value set;
- a ``CodeableConcept`` must have at least one such coding (as the FHIR validator
  does: text alone is not enough when the binding is required).

Value sets that cannot be enumerated from the definitions (mime types, currencies,
UCUM) are not checked. Extensions are checked wherever they appear, by the type of
their ``value[x]``. The walk is iterative, so deep nesting cannot exhaust the stack.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any, NamedTuple

from rempart.errors import Issue

CODE, CODING, CONCEPT, COMPLEX, RESOURCE = range(5)
_KINDS = {"code": CODE, "Coding": CODING, "CodeableConcept": CONCEPT}
_EXTENSIONS = ("extension", "modifierExtension")


class _Spec(NamedTuple):
    """How to check one element: its kind, and what that kind needs."""

    kind: int
    elements: dict[str, _Spec]  # COMPLEX (and the subtree of a bound Coding/CodeableConcept)
    codes: frozenset[str]  # CODE: the value set's codes, all systems
    systems: dict[str, frozenset[str]]  # CODING, CONCEPT: codes by system
    url: str  # the value set


# A path is built only when reported: (parent, name, index or None), the root's name
# being the resource type.
_Path = tuple[Any, str, int | None]
_Frame = tuple[dict[str, Any], dict[str, _Spec], _Path]  # an object to walk, by its type


def check_required_bindings(resource: dict[str, Any]) -> list[Issue]:
    """Issues for every coded element of ``resource`` outside its required value set."""
    types = _types()
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in types:
        return []
    return _walk((resource, types[resource_type], (None, resource_type, None)), types)


def _walk(root: _Frame, types: dict[str, dict[str, _Spec]]) -> list[Issue]:
    """Depth first, without recursion: a frame per object, children in document order."""
    issues: list[Issue] = []
    stack = [root]
    untyped = types[""]
    push = stack.append
    while stack:
        node, elements, path = stack.pop()
        mark = len(stack)
        for name, value in node.items():
            spec = elements.get(name)
            if spec is None:
                children = untyped  # not checked, but extensions inside still are
            elif spec.kind == COMPLEX:
                children = spec.elements
            else:
                _check(spec, value, path, name, types, stack, issues)
                continue
            if isinstance(value, dict):
                push((value, children, (path, name, None)))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        push((item, children, (path, name, i)))
        if len(stack) - mark > 1:
            stack[mark:] = stack[mark:][::-1]  # children in document order
    return issues


def _check(
    spec: _Spec,
    value: Any,
    parent: _Path,
    name: str,
    types: dict[str, dict[str, _Spec]],
    stack: list[_Frame],
    issues: list[Issue],
) -> None:
    """Check a coded element, item by item if it is a list."""
    items = enumerate(value) if isinstance(value, list) else ((None, value),)
    for i, item in items:
        _check_one(spec, item, (parent, name, i), types, stack, issues)


def _check_one(
    spec: _Spec,
    value: Any,
    path: _Path,
    types: dict[str, dict[str, _Spec]],
    stack: list[_Frame],
    issues: list[Issue],
) -> None:
    """Check one coded value, or queue a resource to walk."""
    kind = spec.kind
    if kind == CODE:
        # None stands for an absent value in a list whose extensions are in `_name`.
        if value is not None and (not isinstance(value, str) or value not in spec.codes):
            issues.append(Issue(f"code is not in the required value set {spec.url}", _dot(path)))
        return
    if not isinstance(value, dict):
        return
    if kind == RESOURCE:
        resource_type = value.get("resourceType")
        if isinstance(resource_type, str) and resource_type in types:
            stack.append((value, types[resource_type], path))
        return
    if kind == CODING and not _in(value, spec.systems):
        issues.append(Issue(f"coding is not in the required value set {spec.url}", _dot(path)))
    elif kind == CONCEPT and not _any_in(value.get("coding"), spec.systems):
        message = f"no coding is from the required value set {spec.url}"
        issues.append(Issue(message, _dot(path)))
    stack.append((value, spec.elements, path))


def _in(coding: Any, systems: dict[str, frozenset[str]]) -> bool:
    if not isinstance(coding, dict):
        return False
    system, code = coding.get("system"), coding.get("code")
    if not isinstance(system, str) or not isinstance(code, str):
        return False
    codes = systems.get(system)
    return codes is not None and code in codes


def _any_in(codings: Any, systems: dict[str, frozenset[str]]) -> bool:
    return isinstance(codings, list) and any(_in(coding, systems) for coding in codings)


def _dot(path: _Path) -> str:
    """Render a path, e.g. ``Observation.component[1].code``."""
    parts: list[str] = []
    node: _Path | None = path
    while node is not None:
        parent, name, index = node
        parts.append(name if index is None else f"{name}[{index}]")
        node = parent
    return ".".join(reversed(parts))


def value_set(url: str) -> dict[str, frozenset[str]] | None:
    """The codes of an enumerable R4 value set by system, or None if it is not known."""
    return _value_sets().get(url)


@cache
def _value_sets() -> dict[str, dict[str, frozenset[str]]]:
    table = json.loads(
        files("rempart.fhir.tables").joinpath("required_bindings.json").read_text("utf-8")
    )
    return {
        url: {system: frozenset(codes) for system, codes in by_system.items()}
        for url, by_system in table["valueSets"].items()
    }


@cache
def _types() -> dict[str, dict[str, _Spec]]:
    """Element specs by type name, ``""`` being elements of unknown type; read once."""
    table = json.loads(
        files("rempart.fhir.tables").joinpath("required_bindings.json").read_text("utf-8")
    )
    types: dict[str, dict[str, _Spec]] = {name: {} for name in table["types"]}
    types[""] = {}
    value_sets = {
        url: {system: frozenset(codes) for system, codes in by_system.items()}
        for url, by_system in table["valueSets"].items()
    }
    for name, members in table["types"].items():
        for element, raw in members.items():
            types[name][element] = _spec(raw, types, value_sets)
    extension = _Spec(COMPLEX, types.get("Extension", {}), frozenset(), {}, "")
    for members in types.values():
        members.update(dict.fromkeys(_EXTENSIONS, extension))
    return types


def _spec(
    raw: str | list[str],
    types: dict[str, dict[str, _Spec]],
    value_sets: dict[str, dict[str, frozenset[str]]],
) -> _Spec:
    if isinstance(raw, str):
        kind = RESOURCE if raw == "Resource" else COMPLEX
        return _Spec(kind, {} if kind == RESOURCE else types[raw], frozenset(), {}, "")
    kind_name, url = raw
    systems = value_sets[url]
    subtree = types[""] if kind_name == "code" else types.get(kind_name, types[""])
    codes = frozenset().union(*systems.values())
    return _Spec(_KINDS[kind_name], subtree, codes, systems, url)
