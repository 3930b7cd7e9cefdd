"""vread: ``GET [base]/[type]/[id]/_history/[vid]`` (FHIR R4 §3.1.0.3)."""

from __future__ import annotations

from rempart.errors import Category, RempartError
from rempart.rest.common import check_id, check_type, check_version, found, version_headers
from rempart.rest.context import Context
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse


async def vread(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_, id_ = check_type(request.type), check_id(request.id)
    version = check_version(request.version)
    stored = await ctx.store.vread(type_, id_, version)
    if stored is None:
        raise RempartError(Category.NOT_FOUND, "Version not found")
    found(stored)
    return FhirResponse(
        200, stored.body, {"content-type": FHIR_JSON, **version_headers(request, stored)}
    )
