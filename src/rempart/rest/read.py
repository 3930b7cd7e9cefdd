"""read: ``GET [base]/[type]/[id]`` (FHIR R4 §3.1.0.2)."""

from __future__ import annotations

from rempart.rest.common import check_id, check_type, found, not_modified, version_headers
from rempart.rest.context import Context
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse


async def read(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_, id_ = check_type(request.type), check_id(request.id)
    stored = found(await ctx.store.read(type_, id_))
    headers = version_headers(request, stored, location=False)
    if not_modified(request, stored):
        return FhirResponse(304, None, headers)
    return FhirResponse(200, stored.body, {"content-type": FHIR_JSON, **headers})
