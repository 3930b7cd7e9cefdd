"""Compile the common FHIRPath shapes of search parameters to Python (FHIR R4 §3.1.1.1).

The R4 search parameters mostly use a handful of shapes: ``Type.a.b``, ``.where(a='x')``,
``.where(resolve() is Type)``, ``.as(Type)``, ``.ofType(Type)``, ``(a as Type)``,
``.extension('url')`` and ``[0]``. :func:`compile_branch` turns such a branch into a
function from a list of JSON nodes to the list of nodes the branch selects, which is
what a FHIRPath engine would return. Choice elements (``value[x]``) are resolved with
fhirpathpy's R4 model, so ``Observation.effective`` reads ``effectiveDateTime``,
``effectivePeriod``, ... Anything else raises :class:`NotCompiled`: the caller falls back
to fhirpathpy (:func:`fhirpathpy_expression` rewrites what fhirpathpy cannot evaluate).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhirpathpy.models import models

Nodes = list[Any]
Step = Callable[[Nodes], Nodes]

_MODEL: dict[str, Any] = models["r4"]
_CHOICES: dict[str, list[str]] = _MODEL["choiceTypePaths"]
_TYPES: dict[str, str] = _MODEL["path2Type"]
_ELSEWHERE: dict[str, str] = _MODEL["pathsDefinedElsewhere"]
_BACKBONES = ("BackboneElement", "Element")
# Backbone elements are not in path2Type, only their children are.
_BACKBONE_PATHS = frozenset(
    path.rsplit(".", n)[0] for path in _TYPES for n in range(1, path.count("."))
)

_STRING = r"'(?:[^'\\]|\\.)*'"
_AS = re.compile(r"^\((.+) as ([A-Za-z]+)\)(.*)$")
_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_STEP = re.compile(rf"\.([A-Za-z][A-Za-z0-9]*)(?:\(((?:[^()']|{_STRING}|\(\))*)\))?|\[0\]")
_WHERE_EQ = re.compile(rf"([a-z][A-Za-z0-9]*)\s*=\s*({_STRING})")
_WHERE_IS = re.compile(r"resolve\(\) is ([A-Z][A-Za-z]*)")
_URL = re.compile(_STRING)
_HAS_EXTENSION = re.compile(rf"\bhasExtension\(({_STRING})\)")
_RESOLVE = re.compile(r"\.where\(resolve\(\) is ([A-Z][A-Za-z]*)\)")
_TYPE_GROUP = "([A-Z][A-Za-z]+)"
_CAST = re.compile(r"\.(?:as|ofType)\(([A-Za-z]+)\)")
REFERENCE = re.compile(rf"^(?:.*/)?{_TYPE_GROUP}/([A-Za-z0-9.-]{{1,64}})(?:/_history/[^/]+)?$")


class NotCompiled(Exception):
    """The branch uses a shape the compiler does not know."""


def split_union(expression: str) -> list[str]:
    """The branches of a top-level ``|`` union, ignoring ``|`` in strings or parentheses."""
    branches, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(expression):
        if char == "'" and (i == 0 or expression[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == "|":
            branches.append(expression[start:i].strip())
            start = i + 1
    branches.append(expression[start:].strip())
    return [branch for branch in branches if branch]


def fhirpathpy_expression(branch: str) -> str:
    """The branch as fhirpathpy can evaluate it: ``as`` as ``ofType``, no ``resolve()``.

    R4 writes ``value.as(DateTime)`` where the type is ``dateTime``; fhirpathpy is strict,
    and lacks ``hasExtension(url)``, the same as ``extension(url).exists()``.

    ``X.where(resolve() is Patient)`` keeps the references whose literal reference names a
    Patient, as :data:`REFERENCE` reads them: a search index cannot resolve references.
    """
    match = _AS.match(branch)
    if match:
        branch = f"{match.group(1)}.ofType({match.group(2)}){match.group(3)}"
    branch = branch.replace("(DateTime)", "(dateTime)")
    branch = _HAS_EXTENSION.sub(r"extension(\1).exists()", branch)
    return _RESOLVE.sub(lambda m: f".where(reference.matches('{_typed(m.group(1))}'))", branch)


def _typed(type_: str) -> str:
    return REFERENCE.pattern.replace(_TYPE_GROUP, type_, 1)


def compile_branch(branch: str, start: str | None) -> tuple[Step, str | None]:
    """A branch as a step, and the model path it ends on (``None`` if unknown).

    ``start`` is the model path of the input nodes, ``None`` for a resource whose type is
    the branch's head (``Patient.name``).
    """
    match = _AS.match(branch)
    if match:
        branch = f"{match.group(1)}.as({match.group(2)}){match.group(3)}"
    steps: list[Step] = []
    path, position = start, 0
    if start is not None:
        branch = f".{branch}"  # relative to the input nodes
    else:
        head = _HEAD.match(branch)
        if head is None or not head.group(0)[0].isupper():
            raise NotCompiled(branch)
        path, position = head.group(0), head.end()
    while position < len(branch):
        step = _STEP.match(branch, position)
        if step is None:
            raise NotCompiled(branch)
        position = step.end()
        cast = _CAST.match(branch, position) if step.group(2) is None else None
        if cast:
            position = cast.end()
        path = _add_step(steps, step, cast.group(1) if cast else None, path)
    return _chain(steps), path


def _add_step(
    steps: list[Step], step: re.Match[str], cast: str | None, path: str | None
) -> str | None:
    name, arguments = step.group(1), step.group(2)
    if name is None:
        steps.append(_first)
        return path
    if arguments is None:
        return _add_child(steps, name, path, cast)
    return _add_function(steps, name, arguments, path)


def _add_child(steps: list[Step], name: str, path: str | None, cast: str | None) -> str | None:
    """A child element; a choice element is read by all its types unless cast."""
    if path is None:
        raise NotCompiled(name)
    full = _ELSEWHERE.get(f"{path}.{name}", f"{path}.{name}")
    if full in _CHOICES:
        if cast is None:
            steps.append(_choice(name, _CHOICES[full]))
            return full
        suffix = cast[0].upper() + cast[1:]
        if suffix not in _CHOICES[full]:
            raise NotCompiled(cast)
        steps.append(_child(name + suffix))
        return cast
    type_ = "BackboneElement" if full in _BACKBONE_PATHS else _TYPES.get(full)
    if type_ is None or cast is not None:
        raise NotCompiled(full)
    steps.append(_child(name))
    return full if type_ in _BACKBONES else type_


def _add_function(steps: list[Step], name: str, arguments: str, path: str | None) -> str | None:
    if name == "extension" and _URL.fullmatch(arguments):
        steps.append(_extension(arguments[1:-1]))
        return "Extension"
    if name == "where":
        steps.append(_where(arguments))
        return path
    raise NotCompiled(name)


def _where(arguments: str) -> Step:
    equal = _WHERE_EQ.fullmatch(arguments)
    if equal:
        return _where_equal(equal.group(1), _unquote(equal.group(2)))
    resolve = _WHERE_IS.fullmatch(arguments)
    if resolve:
        return _where_reference(resolve.group(1))
    raise NotCompiled(arguments)


def _unquote(literal: str) -> str:
    if "\\" in literal:
        raise NotCompiled(literal)  # escapes are rare enough for the engine to handle
    return literal[1:-1]


# --- steps --------------------------------------------------------------------------


def _chain(steps: list[Step]) -> Step:
    def run(nodes: Nodes) -> Nodes:
        for step in steps:
            if not nodes:
                return nodes
            nodes = step(nodes)
        return nodes

    return run


def _child(name: str) -> Step:
    def child(nodes: Nodes) -> Nodes:
        found: Nodes = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(name)
                if isinstance(value, list):
                    found.extend(item for item in value if item is not None)
                elif value is not None:
                    found.append(value)
        return found

    return child


def _choice(name: str, suffixes: list[str]) -> Step:
    keys = [name + suffix for suffix in suffixes]

    def choice(nodes: Nodes) -> Nodes:
        found: Nodes = []
        for node in nodes:
            if isinstance(node, dict):
                found.extend(node[key] for key in keys if key in node)
        return found

    return choice


def _first(nodes: Nodes) -> Nodes:
    return nodes[:1]


def _extension(url: str) -> Step:
    def extension(nodes: Nodes) -> Nodes:
        return [
            item
            for node in nodes
            if isinstance(node, dict)
            for item in node.get("extension") or ()
            if isinstance(item, dict) and item.get("url") == url
        ]

    return extension


def _where_equal(field: str, literal: str) -> Step:
    def where(nodes: Nodes) -> Nodes:
        return [node for node in nodes if isinstance(node, dict) and node.get(field) == literal]

    return where


def _where_reference(type_: str) -> Step:
    def where(nodes: Nodes) -> Nodes:
        return [node for node in nodes if reference_type(node) == type_]

    return where


def reference_type(node: Any) -> str | None:
    """The resource type a Reference's literal reference names, if any."""
    if not isinstance(node, dict):
        return None
    reference = node.get("reference")
    match = REFERENCE.match(reference) if isinstance(reference, str) else None
    return match.group(1) if match else None
