"""create: ``POST [base]/[type]`` (FHIR R4 §3.1.0.5). The server assigns the id.

With ``If-None-Exist`` it is a conditional create (:mod:`.conditional`).
"""

from __future__ import annotations

import uuid

from rempart.rest.common import check_type, load_resource, renderer, written
from rempart.rest.conditional import create_if_none_exist
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.storage.ports import WriteRequest


async def create(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_ = check_type(request.type)
    criteria = request.header("if-none-exist")
    if criteria is not None:
        return await create_if_none_exist(ctx, request, type_, criteria)
    resource = load_resource(ctx, request, type_)
    id_ = str(uuid.uuid4())
    write = WriteRequest(type_, id_, renderer(ctx, resource, id_), create_only=True, method="POST")
    result = await ctx.store.write(write)
    assert result.version is not None  # a create always writes a version
    return written(request, result.version, 201)
