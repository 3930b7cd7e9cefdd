"""create: ``POST [base]/[type]`` (FHIR R4 §3.1.0.5). The server assigns the id."""

from __future__ import annotations

import uuid

from rempart.errors import Category, RempartError
from rempart.rest.common import check_type, load_resource, renderer, written
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.storage.ports import WriteRequest


async def create(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_ = check_type(request.type)
    if request.header("if-none-exist") is not None:
        # Conditional create needs search, which is not built yet: refusing is safer
        # than silently creating the duplicate the client is trying to avoid.
        raise RempartError(
            Category.INCORRECT, "Conditional create is not supported yet", code="not-supported"
        )
    resource = load_resource(ctx, request, type_)
    id_ = str(uuid.uuid4())
    write = WriteRequest(type_, id_, renderer(ctx, resource, id_), create_only=True, method="POST")
    result = await ctx.store.write(write)
    assert result.version is not None  # a create always writes a version
    return written(request, result.version, 201)
