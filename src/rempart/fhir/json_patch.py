"""JSON Patch (RFC 6902), one of the two bodies of the FHIR ``patch`` interaction
(FHIR R4 RESTful API, http://hl7.org/fhir/R4/http.html#patch), applied with the
``jsonpatch`` library. A malformed patch is INCORRECT (400); one that cannot be applied
to this resource is UNPROCESSABLE (422). The input is never changed.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from rempart.errors import Category
from rempart.fhir.patch import checked_result, patch_error, too_deep

# The members each operation needs besides "op" and "path" (RFC 6902 §4).
_JSON_OPS: dict[str, tuple[str, ...]] = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}


def apply_json_patch(resource: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON Patch to a copy of ``resource`` and return the copy."""
    # jsonpatch accepts any iterable and reports errors in its own words; checking the
    # shape first gives the caller one short, input-free message per case.
    if not isinstance(patch, list):
        raise patch_error(Category.INCORRECT, "a JSON Patch body must be an array of operations")
    for index, operation in enumerate(patch):
        _check_json_op(operation, index)
    try:
        doc: Any = copy.deepcopy(resource)
        for index, operation in enumerate(patch):
            doc = _apply_json_op(doc, operation, index)
    except RecursionError:
        raise too_deep() from None
    return checked_result(resource, doc)


def _check_json_op(operation: Any, index: int) -> None:
    name = operation.get("op") if isinstance(operation, dict) else None
    if not isinstance(name, str) or name not in _JSON_OPS:
        raise patch_error(Category.INCORRECT, "not an operation with a known 'op'", index)
    needed = _JSON_OPS[name]
    for member in ("path", "from") if "from" in needed else ("path",):
        if not _is_pointer(operation.get(member)):
            raise patch_error(Category.INCORRECT, f"'{member}' is not a JSON Pointer", index)
    if "value" in needed and "value" not in operation:
        raise patch_error(Category.INCORRECT, "'value' is missing", index)


def _is_pointer(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        jsonpatch.JsonPointer(value)
    except jsonpatch.JsonPointerException:
        return False
    return True


def _apply_json_op(doc: Any, operation: dict[str, Any], index: int) -> Any:
    # One operation at a time, so that a failure names its operation; ``doc`` is our
    # private copy, so in-place changes are safe and a failure simply discards it.
    try:
        return jsonpatch.JsonPatch([operation]).apply(doc, in_place=True)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise patch_error(Category.UNPROCESSABLE, "test failed", index) from exc
    except jsonpatch.InvalidJsonPatch as exc:
        raise patch_error(Category.INCORRECT, "invalid operation", index) from exc
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as exc:
        raise patch_error(Category.UNPROCESSABLE, "path does not apply here", index) from exc
