"""update: ``PUT [base]/[type]/[id]`` (FHIR R4 §3.1.0.4), with create-on-update."""

from __future__ import annotations

from rempart.errors import Category, RempartError
from rempart.rest.common import check_id, check_type, if_match, load_resource, renderer, written
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.storage.ports import WriteRequest


async def update(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_, id_ = check_type(request.type), check_id(request.id)
    resource = load_resource(ctx, request, type_)
    if resource.get("id") != id_:
        raise RempartError(Category.INCORRECT, "The body's id must equal the id in the URL")
    write = WriteRequest(
        type_, id_, renderer(ctx, resource, id_), expected_version=if_match(request)
    )
    result = await ctx.store.write(write)
    assert result.version is not None  # an update always writes a version
    return written(request, result.version, 201 if result.created else 200)
