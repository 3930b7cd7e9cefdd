"""Conditional create, update, delete and patch (FHIR R4 §3.1.0.5, .4.3, .7.1, .6).

The condition is a search; it is parsed strictly (an unknown parameter would otherwise
be ignored and the condition match everything). A conditional create that found nothing
writes with the search as a guard: the store re-runs it inside the write transaction
and refuses if a match appeared meanwhile, so two concurrent conditional creates cannot
both create (the loser then answers with the winner's resource).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from urllib.parse import parse_qsl

from rempart.errors import Category, RempartError
from rempart.fhir.search.parse import parse_search
from rempart.fhir.search.query import SearchQuery
from rempart.rest import patch as patch_interaction
from rempart.rest.common import check_type, if_match, load_resource, renderer, written
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.rest.search import limits
from rempart.storage.ports import StoredVersion, WriteRequest, WriteResult


def condition(ctx: Context, type_: str, params: tuple[tuple[str, str], ...]) -> SearchQuery:
    """The search of a conditional URL or ``If-None-Exist``; a condition is required."""
    criteria = tuple((k, v) for k, v in params if k not in ("_format", "_pretty"))
    if not criteria:
        raise RempartError(Category.INCORRECT, "A conditional interaction needs search criteria")
    return parse_search((type_,), criteria, strict=True, limits=limits(ctx))


def query_string(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_qsl(text.lstrip("?"), keep_blank_values=True, max_num_fields=50))
    except ValueError:
        raise RempartError(Category.INCORRECT, "Malformed search criteria") from None


async def matches(ctx: Context, query: SearchQuery) -> list[tuple[str, str]]:
    return await ctx.store.matching(query, 2)


def one_at_most(found: list[tuple[str, str]]) -> str | None:
    """The id of the single match, None for none; 412 for several (§3.1.0.4.3)."""
    if len(found) > 1:
        raise RempartError(
            Category.PRECONDITION_FAILED, "The search criteria match more than one resource"
        )
    return found[0][1] if found else None


async def create_if_none_exist(
    ctx: Context, request: FhirRequest, type_: str, criteria: str
) -> FhirResponse:
    """``POST [type]`` with ``If-None-Exist``: 200 with the match, or create (201)."""
    query = condition(ctx, type_, query_string(criteria))
    resource = load_resource(ctx, request, type_)
    for _ in range(2):  # a second look after losing a race to a concurrent create
        existing = one_at_most(await matches(ctx, query))
        if existing is not None:
            return written(request, await _current(ctx, type_, existing), 200)
        id_ = str(uuid.uuid4())
        write = WriteRequest(
            type_, id_, renderer(ctx, resource, id_), create_only=True, method="POST", guard=query
        )
        try:
            return written(request, _version(await ctx.store.write(write)), 201)
        except RempartError as exc:
            if exc.category is not Category.CONFLICT:
                raise
    raise RempartError(Category.CONFLICT, "Concurrent conditional creates; retry")


async def update(ctx: Context, request: FhirRequest) -> FhirResponse:
    """``PUT [type]?criteria``: update the one match, or create if none (§3.1.0.4.3)."""
    type_ = check_type(request.type)
    query = condition(ctx, type_, request.query)
    resource = load_resource(ctx, request, type_)
    existing = one_at_most(await matches(ctx, query))
    body_id = resource.get("id")
    if existing is not None and body_id is not None and body_id != existing:
        raise RempartError(Category.INCORRECT, "The body's id differs from the matched resource")
    id_ = existing or (body_id if isinstance(body_id, str) else str(uuid.uuid4()))
    write = WriteRequest(
        type_,
        id_,
        renderer(ctx, resource, id_),
        expected_version=if_match(request),
        guard=None if existing else query,
    )
    result = await ctx.store.write(write)
    return written(request, _version(result), 201 if result.created else 200)


async def delete(ctx: Context, request: FhirRequest) -> FhirResponse:
    """``DELETE [type]?criteria``: delete the one match (412 for several)."""
    type_ = check_type(request.type)
    existing = one_at_most(await matches(ctx, condition(ctx, type_, request.query)))
    if existing is None:
        return FhirResponse(204)
    await ctx.store.write(WriteRequest(type_, existing, None, expected_version=if_match(request)))
    return FhirResponse(204)


async def patch(ctx: Context, request: FhirRequest) -> FhirResponse:
    """``PATCH [type]?criteria``: patch the one match (404 for none, 412 for several)."""
    type_ = check_type(request.type)
    existing = one_at_most(await matches(ctx, condition(ctx, type_, request.query)))
    if existing is None:
        raise RempartError(Category.NOT_FOUND, "No resource matches the search criteria")
    return await patch_interaction.patch(ctx, replace(request, id=existing, query=()))


async def _current(ctx: Context, type_: str, id_: str) -> StoredVersion:
    stored = await ctx.store.read(type_, id_)
    if stored is None or stored.deleted:
        raise RempartError(Category.CONFLICT, "The matched resource changed; retry")
    return stored


def _version(result: WriteResult) -> StoredVersion:
    assert result.version is not None  # creates and updates always write a version
    return result.version
