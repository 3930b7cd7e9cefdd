"""FHIRPath Patch, one of the two bodies of the FHIR ``patch`` interaction: a
``Parameters`` resource of ``operation`` parameters (FHIR R4 FHIRPath Patch,
http://hl7.org/fhir/R4/fhirpatch.html). JSON Patch is in ``json_patch.py``; the
error helpers here serve both.

A malformed body is INCORRECT (400); a well-formed patch that cannot be applied to
this resource is UNPROCESSABLE (422). Messages name the operation by its index and
never echo what the caller sent. Neither function changes its arguments, and
``decimal.Decimal`` values stay as they are (``copy.deepcopy`` keeps them).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fhirkit

from rempart.errors import Category, Issue, RempartError
from rempart.fhir import fhirpath_locate as locate

__all__ = ["apply_fhirpath_patch"]


def patch_error(
    category: Category, text: str, index: int | None = None, path: str | None = None
) -> RempartError:
    message = text if index is None else f"operation {index}: {text}"
    return RempartError(category, message, [Issue(message, path)])


def _param_error(category: Category, text: str, index: int) -> RempartError:
    return patch_error(category, text, index, f"Parameters.parameter[{index}]")


def checked_result(original: dict[str, Any], patched: Any) -> dict[str, Any]:
    if not isinstance(patched, dict):
        raise patch_error(Category.UNPROCESSABLE, "the patch result is not a resource")
    # A resource's type is its identity on this server; a patch is not a way to change it.
    if patched.get("resourceType") != original.get("resourceType"):
        raise patch_error(Category.UNPROCESSABLE, "a patch must not change the resource type")
    return patched


def too_deep() -> RempartError:
    return patch_error(Category.INCORRECT, "the patch document is nested too deeply")


# --- FHIRPath Patch: the Parameters document -----------------------------------------

_REQUIRED_PARTS: dict[str, tuple[str, ...]] = {
    "add": ("path", "name", "value"),
    "insert": ("path", "value", "index"),
    "delete": ("path",),
    "replace": ("path", "value"),
    "move": ("path", "source", "destination"),
}
_KNOWN_PARTS = frozenset({"type", "path", "name", "value", "index", "source", "destination"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_NUMBERS = ("index", "source", "destination")


@dataclass(frozen=True)
class _Operation:
    """One ``operation`` parameter, checked and decoded before any is applied."""

    index: int
    kind: str
    path: str
    name: str
    value: Any
    numbers: dict[str, int]

    def unprocessable(self, text: str) -> RempartError:
        return _param_error(Category.UNPROCESSABLE, text, self.index)


def _operations(parameters: Any) -> list[_Operation]:
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise patch_error(Category.INCORRECT, "a FHIRPath Patch body must be a Parameters resource")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise patch_error(Category.INCORRECT, "Parameters.parameter must be an array")
    return [_operation(entry, index) for index, entry in enumerate(entries)]


def _operation(entry: Any, index: int) -> _Operation:
    if not isinstance(entry, dict) or entry.get("name") != "operation":
        raise _incorrect(index, "parameter is not an 'operation'")
    parts = _parts_by_name(entry.get("part"), index)
    kind = _text(parts, "type", index)
    needed = _REQUIRED_PARTS.get(kind)
    if needed is None:
        raise _incorrect(index, "unknown operation type")
    for name in needed:
        if name not in parts:
            raise _incorrect(index, f"part '{name}' is missing")
    return _Operation(
        index,
        kind,
        _text(parts, "path", index),
        _element_name(parts, index) if "name" in needed else "",
        _part_value(parts["value"], index) if "value" in needed else None,
        {name: _integer(parts, name, index) for name in _NUMBERS if name in needed},
    )


def _incorrect(index: int, text: str) -> RempartError:
    return _param_error(Category.INCORRECT, text, index)


def _parts_by_name(parts: Any, index: int) -> dict[str, dict[str, Any]]:
    if not isinstance(parts, list):
        raise _incorrect(index, "operation has no parts")
    found: dict[str, dict[str, Any]] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name not in _KNOWN_PARTS or name in found:
            raise _incorrect(index, "unknown or repeated part")
        found[name] = part
    return found


def _text(parts: dict[str, dict[str, Any]], name: str, index: int) -> str:
    part = parts.get(name, {})
    value = part.get("valueString", part.get("valueCode"))
    if not isinstance(value, str) or not value:
        raise _incorrect(index, f"part '{name}' needs a string value")
    return value


def _integer(parts: dict[str, dict[str, Any]], name: str, index: int) -> int:
    value = parts[name].get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool):
        raise _incorrect(index, f"part '{name}' needs an integer value")
    return value


def _element_name(parts: dict[str, dict[str, Any]], index: int) -> str:
    name = _text(parts, "name", index)
    if not _NAME.fullmatch(name) or name == "resourceType":
        raise _incorrect(index, "part 'name' is not an element name")
    return name


def _part_value(part: dict[str, Any], index: int) -> Any:
    keys = [k for k in part if isinstance(k, str) and (k.startswith("value") or k == "resource")]
    if len(keys) > 1:
        raise _incorrect(index, "a value part holds more than one value")
    if keys:
        return _json_value(keys[0], part[keys[0]], index)
    nested = part.get("part")
    if isinstance(nested, list) and nested:
        return _object_from_parts(nested, index)
    raise _incorrect(index, "a value part holds no value")


def _object_from_parts(parts: list[Any], index: int) -> dict[str, Any]:
    # Types without a value[x] form (BackboneElements such as Patient.contact) come as
    # one part per child element; a name given twice is a repeating element.
    children: dict[str, list[Any]] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _incorrect(index, "a value part needs an element name")
        children.setdefault(name, []).append(_part_value(part, index))
    return {name: items[0] if len(items) == 1 else items for name, items in children.items()}


def _json_value(key: str, value: Any, index: int) -> Any:
    if key != "valueDecimal":
        return copy.deepcopy(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _incorrect(index, "valueDecimal is not a number")
    # str() first: Decimal(0.1) would keep all 55 digits of the binary float.
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise _incorrect(index, "valueDecimal is not a number")
    return number


def _locate(
    doc: dict[str, Any], steps: list[locate.Step], operation: _Operation
) -> list[locate.Location]:
    head = steps[0]
    if not isinstance(head, locate.Child) or head.name != locate.root(doc).path:
        raise operation.unprocessable("path must start with the resource type")
    return locate.evaluate(doc, steps)


def _steps(operation: _Operation) -> list[locate.Step]:
    try:
        return locate.parse_path(operation.path)
    except locate.Unsupported:
        raise operation.unprocessable("unsupported FHIRPath in patch path") from None


def _only(found: list[locate.Location], operation: _Operation) -> locate.Location:
    if not found:
        raise operation.unprocessable("path matches nothing")
    if len(found) > 1:
        raise operation.unprocessable("path matches more than one element")
    return found[0]


# --- FHIRPath Patch: the operations -------------------------------------------------


def apply_fhirpath_patch(resource: dict[str, Any], parameters: Any) -> dict[str, Any]:
    """Apply a FHIRPath Patch ``Parameters`` to a copy of ``resource``; return the copy."""
    try:
        operations = _operations(parameters)
        doc = copy.deepcopy(resource)
        for operation in operations:
            _HANDLERS[operation.kind](doc, operation)
        _prune(doc)
    except RecursionError:
        raise too_deep() from None
    return checked_result(resource, doc)


def _add(doc: dict[str, Any], operation: _Operation) -> None:
    target = _only(_locate(doc, _steps(operation), operation), operation)
    name, value, element = operation.name, operation.value, target.value
    if not isinstance(element, dict):
        raise operation.unprocessable("path does not select an element with children")
    held = element.get(name)
    path = f"{target.path}.{name}"
    if isinstance(held, list):
        held.append(value)
        path = f"{path}[{len(held) - 1}]"
    elif name in element:
        # Spec: add is for non-repeating elements only "as long as they do not already exist".
        raise operation.unprocessable("element already exists")
    else:
        element[name] = value
    _fit_cardinality(doc, path)


def _insert(doc: dict[str, Any], operation: _Operation) -> None:
    element, name, path = _list_owner(doc, operation)
    items = element.get(name, [])
    index = operation.numbers["index"]
    if not isinstance(items, list):
        raise operation.unprocessable("path does not select a list")
    if not 0 <= index <= len(items):
        raise operation.unprocessable("index out of range")
    items.insert(index, operation.value)
    element[name] = items
    _fit_cardinality(doc, f"{path}[{index}]")


def _delete(doc: dict[str, Any], operation: _Operation) -> None:
    found = _locate(doc, _steps(operation), operation)
    if not found:
        return  # Spec: "Path of the element to delete (if found)"; nothing is no error.
    target = _only(found, operation)
    if target.is_root:
        raise operation.unprocessable("a patch cannot delete the resource itself")
    if target.index is None:
        del target.parent[target.name]
    else:
        del target.parent[target.name][target.index]


def _replace(doc: dict[str, Any], operation: _Operation) -> None:
    target = _only(_locate(doc, _steps(operation), operation), operation)
    if target.is_root:
        raise operation.unprocessable("a patch cannot replace the resource itself")
    value = operation.value
    if target.index is None:
        target.parent[target.name] = value
    else:
        target.parent[target.name][target.index] = value
    _fit_cardinality(doc, target.path)


def _move(doc: dict[str, Any], operation: _Operation) -> None:
    element, name, _ = _list_owner(doc, operation)
    items = element.get(name)
    source, destination = operation.numbers["source"], operation.numbers["destination"]
    if not isinstance(items, list):
        raise operation.unprocessable("path does not select a list")
    if not (0 <= source < len(items) and 0 <= destination < len(items)):
        raise operation.unprocessable("index out of range")
    items.insert(destination, items.pop(source))


def _prune(node: Any) -> bool:
    """Drop the objects and arrays that deletes left empty; True if ``node`` is empty.

    FHIR JSON has no empty objects or arrays, and the official patch test cases expect
    deleting Patient.contact[0].name.text to remove the then empty ``name`` too.
    """
    if isinstance(node, dict):
        for key in [key for key, value in node.items() if _prune(value)]:
            del node[key]
        return not node
    if isinstance(node, list):
        node[:] = [item for item in node if not _prune(item)]
        return not node
    return False


def _list_owner(doc: dict[str, Any], operation: _Operation) -> tuple[dict[str, Any], str, str]:
    """For insert and move: the element owning the list, the list's name, its path.

    The path names the list itself, which may be absent or empty, so it is resolved
    through its parent rather than through its (possibly zero) items.
    """
    steps = _steps(operation)
    last = steps[-1]
    if len(steps) < 2 or not isinstance(last, locate.Child):
        raise operation.unprocessable("path must end with the name of a list element")
    owner = _only(_locate(doc, steps[:-1], operation), operation)
    if not isinstance(owner.value, dict):
        raise operation.unprocessable("path does not select a list")
    return owner.value, last.name, f"{owner.path}.{last.name}"


_HANDLERS: dict[str, Callable[[dict[str, Any], _Operation], None]] = {
    "add": _add,
    "insert": _insert,
    "delete": _delete,
    "replace": _replace,
    "move": _move,
}


# --- FHIRPath Patch: cardinality ------------------------------------------------------
# A patch value carries no cardinality: adding "contact" to a Patient must give
# "contact": [{...}] because Patient.contact repeats, and a value built from parts may
# hold repeating children too. fhirkit knows the R4 definitions and reports such a place
# as "expected an array"; we wrap exactly those places under the path just written.
# Each pass can only reveal places one level deeper, so the passes are bounded.

_MAX_PASSES = 32


def _fit_cardinality(doc: dict[str, Any], prefix: str) -> None:
    for _ in range(_MAX_PASSES):
        wrapped = [_wrap(doc, path) for path in _array_issues(doc, prefix)]
        if not any(wrapped):
            return


def _array_issues(doc: dict[str, Any], prefix: str) -> list[str]:
    try:
        issues = fhirkit.validate(doc)
    except (TypeError, ValueError):
        return []  # not JSON-shaped; the server's validation reports it after the patch
    return [
        issue.path
        for issue in issues
        if issue.message.startswith("expected an array")
        and (issue.path == prefix or issue.path.startswith((f"{prefix}.", f"{prefix}[")))
    ]


def _wrap(doc: dict[str, Any], path: str) -> bool:
    # fhirkit's issue paths ("Patient.contact[0].telecom") are in our FHIRPath subset.
    try:
        found = locate.evaluate(doc, locate.parse_path(path))
    except locate.Unsupported:
        return False
    targets = [t for t in found if t.index is None and not t.is_root]
    for target in targets:
        target.parent[target.name] = [target.value]
    return bool(targets)
