"""patch: ``PATCH [base]/[type]/[id]`` (FHIR R4 §3.1.0.6).

JSON Patch (RFC 6902, ``application/json-patch+json``) or FHIRPath Patch (a
``Parameters`` body in ``application/fhir+json``). The patched resource is
validated like any write (422 if the result is invalid) and written only if
the version it was computed from is still current (no lost update).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from rempart.errors import Category, RempartError
from rempart.fhir.json_patch import apply_json_patch
from rempart.fhir.patch import apply_fhirpath_patch
from rempart.rest.common import JSON_TYPES, check_id, check_type, found, if_match, renderer, written
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.storage.ports import StoredVersion, WriteRequest

JSON_PATCH = "application/json-patch+json"


async def patch(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_, id_ = check_type(request.type), check_id(request.id)
    current = found(await ctx.store.read(type_, id_))
    expected = if_match(request)
    if expected is not None and expected != current.version:
        raise RempartError(Category.PRECONDITION_FAILED, "The resource version does not match")
    patched = _apply(ctx, request, current)
    try:
        resource = ctx.validator.load(patched)
    except RempartError as exc:
        raise RempartError(
            Category.UNPROCESSABLE, "The patched resource is not valid FHIR R4", exc.issues
        ) from None
    if resource.get("resourceType") != type_ or resource.get("id") != id_:
        raise RempartError(Category.UNPROCESSABLE, "A patch may not change the resource type or id")
    write = WriteRequest(
        type_, id_, renderer(ctx, resource, id_), expected_version=current.version, method="PATCH"
    )
    try:
        result = await ctx.store.write(write)
    except RempartError as exc:
        if exc.category is Category.PRECONDITION_FAILED:
            raise RempartError(
                Category.CONFLICT, "The resource changed during the patch; retry"
            ) from None
        raise
    assert result.version is not None  # a patch always writes a version
    return written(request, result.version, 200)


def _apply(ctx: Context, request: FhirRequest, current: StoredVersion) -> dict[str, Any]:
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    assert current.body is not None  # found() excludes deletions
    resource = ctx.validator.load(current.body)
    if content_type == JSON_PATCH:
        return apply_json_patch(resource, _json(request.body))
    if content_type in JSON_TYPES:
        return apply_fhirpath_patch(resource, ctx.validator.load(request.body))
    raise RempartError(
        Category.UNSUPPORTED_MEDIA,
        "Send application/json-patch+json or a FHIRPath Patch as application/fhir+json",
    )


def _json(body: bytes) -> Any:
    """The JSON Patch document, numbers as Decimal so that ``72.50`` stays ``72.50``."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise RempartError(Category.INCORRECT, "The patch is not valid JSON") from None
