"""delete: ``DELETE [base]/[type]/[id]`` (FHIR R4 §3.1.0.7).

Deleting records a deletion version; a later read answers 410 Gone. Deleting
what does not exist, or is already deleted, succeeds without a new version.
"""

from __future__ import annotations

from rempart.rest.common import check_id, check_type, etag, if_match
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.storage.ports import WriteRequest


async def delete(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_, id_ = check_type(request.type), check_id(request.id)
    result = await ctx.store.write(
        WriteRequest(type_, id_, None, expected_version=if_match(request))
    )
    headers = {"etag": etag(result.version.version)} if result.version else {}
    return FhirResponse(204, None, headers)
