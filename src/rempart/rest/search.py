"""search: type, system and compartment search (FHIR R4 §3.1.0.9, §3.1.1).

``GET [type]?…``, ``POST [type]/_search`` (form body), ``GET [base]?…`` and
``GET [type]/[id]/[member]?…`` (compartments, §3.2.1). Pages are read as of the moment
of the first page and linked by signed cursors (``_cursor``) bound to the query, so a
caller can follow ``next``/``previous`` while writes happen without missing or repeating
a match, and cannot forge or move a cursor (400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from rempart.errors import Category, RempartError
from rempart.fhir.compartments import compartment_types, members
from rempart.fhir.elements import select_elements, summarize
from rempart.fhir.outcome import outcome
from rempart.fhir.search.parse import Limits, parse_search
from rempart.fhir.search.query import InCompartment, SearchQuery
from rempart.fhir.validation import RESOURCE_TYPES
from rempart.rest.common import NOT_CLINICAL, check_id, check_type, not_clinical, prefer
from rempart.rest.context import Context
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse
from rempart.storage.ports import SearchRequest, SearchResult, StoredVersion, now_micros

NOT_QUERY = {"_cursor", "_format", "_pretty"}
"""Parameters that do not change what a search selects (kept out of cursor scopes)."""
FORM = "application/x-www-form-urlencoded"


async def search_type(ctx: Context, request: FhirRequest) -> FhirResponse:
    type_ = check_type(request.type)
    params = parameters(request)
    query = parse_search((type_,), params, strict=strict(request), limits=limits(ctx))
    return await respond(ctx, request, query, type_, params)


async def search_system(ctx: Context, request: FhirRequest) -> FhirResponse:
    params = parameters(request)
    types = _types(params)
    query = parse_search(types, params, strict=strict(request), limits=limits(ctx))
    return await respond(ctx, request, query, "", params)


async def search_compartment(ctx: Context, request: FhirRequest) -> FhirResponse:
    compartment, id_ = check_type(request.type), check_id(request.id)
    if compartment not in compartment_types():
        raise RempartError(Category.NOT_FOUND, "This resource type has no compartment")
    member = request.target or ""
    types = compartment_members(compartment) if member == "*" else (member,)
    if member in NOT_CLINICAL:
        raise not_clinical()
    if member != "*" and member not in compartment_members(compartment):
        raise RempartError(Category.NOT_FOUND, "Unknown resource type in this compartment")
    params = parameters(request)
    query = parse_search(types, params, strict=strict(request), limits=limits(ctx))
    query = replace(query, where=(InCompartment(compartment, id_), *query.where))
    return await respond(ctx, request, query, f"{compartment}/{id_}/{member}", params)


def compartment_members(compartment: str) -> tuple[str, ...]:
    """The types of a compartment: its members and the compartment's own type."""
    return tuple(sorted({compartment, *members(compartment)} - NOT_CLINICAL))


def parameters(request: FhirRequest) -> tuple[tuple[str, str], ...]:
    """The URL's parameters, and a ``_search`` POST's form body's."""
    if request.method != "POST":
        return request.query
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise RempartError(Category.UNSUPPORTED_MEDIA, f"POST _search takes a {FORM} body")
    try:
        form = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise RempartError(Category.INCORRECT, "Malformed search form") from None
    return (*request.query, *form)


def strict(request: FhirRequest) -> bool:
    return prefer(request, "handling") == "strict"


def limits(ctx: Context) -> Limits:
    return Limits(ctx.limits.default_count, ctx.limits.max_count, ctx.limits.chain_depth)


def _types(params: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    types = [t.strip() for key, value in params if key == "_type" for t in value.split(",")]
    if any(t not in RESOURCE_TYPES for t in types):
        raise RempartError(Category.INCORRECT, "_type lists unknown resource types")
    if NOT_CLINICAL.intersection(types):
        raise not_clinical()
    return tuple(dict.fromkeys(types))


@dataclass(frozen=True)
class Position:
    """Where a page starts, decoded from a cursor: ``as_of`` and one of the others."""

    as_of: int
    after: int | None = None
    before: int | None = None
    offset: int = 0

    def encode(self) -> str:
        if self.after is not None:
            return f"{self.as_of}.a{self.after}"
        if self.before is not None:
            return f"{self.as_of}.b{self.before}"
        return f"{self.as_of}.o{self.offset}"

    @classmethod
    def decode(cls, text: str) -> Position:
        as_of, _, rest = text.partition(".")
        kind, number = rest[:1], int(rest[1:])
        if kind == "a":
            return cls(int(as_of), after=number)
        if kind == "b":
            return cls(int(as_of), before=number)
        return cls(int(as_of), offset=number)


async def respond(
    ctx: Context,
    request: FhirRequest,
    query: SearchQuery,
    path: str,
    params: tuple[tuple[str, str], ...],
) -> FhirResponse:
    """Run ``query`` for the page the request's cursor names and answer a searchset."""
    if any({i.source, i.target} & NOT_CLINICAL for i in query.includes):
        raise not_clinical()
    scope = f"search|{path}|{urlencode([(k, v) for k, v in params if k not in NOT_QUERY])}"
    position = _position(ctx, scope, params)
    if query.summary == "count":
        query = replace(query, count=0, includes=())
    page = SearchRequest(
        query,
        position.as_of,
        after_seq=position.after,
        before_seq=position.before,
        offset=position.offset,
        with_total=query.total != "none" or query.summary == "count",
        include_limit=ctx.limits.max_included,
        include_depth=ctx.limits.include_depth,
    )
    result = await ctx.store.search(page)
    links = _links(ctx, request, path, params, scope, position, query, result)
    body = _bundle(ctx, request, query, result, links, first=_first(params))
    return FhirResponse(200, body, {"content-type": FHIR_JSON})


def _position(ctx: Context, scope: str, params: tuple[tuple[str, str], ...]) -> Position:
    cursor = next((v for k, v in params if k == "_cursor"), None)
    if cursor is None:
        return Position(now_micros())
    text = ctx.cursors.read_text(scope, cursor)
    try:
        return Position.decode(text)
    except ValueError:
        raise RempartError(Category.INCORRECT, "Invalid paging cursor") from None


def _first(params: tuple[tuple[str, str], ...]) -> bool:
    return all(key != "_cursor" for key, _ in params)


def _links(
    ctx: Context,
    request: FhirRequest,
    path: str,
    params: tuple[tuple[str, str], ...],
    scope: str,
    at: Position,
    query: SearchQuery,
    result: SearchResult,
) -> list[dict[str, str]]:
    def link(relation: str, position: Position | None) -> dict[str, str]:
        kept = [(k, v) for k, v in params if k not in NOT_QUERY]
        if position is not None:
            kept.append(("_cursor", ctx.cursors.issue_text(scope, position.encode())))
        url = f"{request.base_url}/{path}".rstrip("/")
        return {"relation": relation, "url": url + (f"?{urlencode(kept)}" if kept else "")}

    links = [link("self", None if _first(params) else at)]
    rows = result.matches
    backwards = at.before is not None
    if query.sort:
        if result.more:
            links.append(link("next", replace(at, offset=at.offset + query.count)))
        if at.offset > 0:
            links.append(link("previous", replace(at, offset=max(0, at.offset - query.count))))
    elif rows:
        if result.more or backwards:
            links.append(link("next", Position(at.as_of, after=rows[-1].seq)))
        if (at.after is not None) or (backwards and result.more):
            links.append(link("previous", Position(at.as_of, before=rows[0].seq)))
    return links


def _bundle(
    ctx: Context,
    request: FhirRequest,
    query: SearchQuery,
    result: SearchResult,
    links: list[dict[str, str]],
    *,
    first: bool,
) -> bytes:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    total = result.total
    if total is None and first and not result.more and query.count > 0:
        total = len(result.matches)  # the whole result is on this page: the total is free
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [_entry(ctx, request, query, row, "match") for row in result.matches]
    entries += [_entry(ctx, request, query, row, "include") for row in result.included]
    if query.ignored:
        entries.append(_ignored(query.ignored))
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)


def _entry(
    ctx: Context, request: FhirRequest, query: SearchQuery, row: StoredVersion, mode: str
) -> dict[str, Any]:
    return {
        "fullUrl": f"{request.base_url}/{row.type}/{row.id}",
        "resource": orjson.Fragment(_shaped(ctx, query, row.body or b"{}")),
        "search": {"mode": mode},
    }


def _shaped(ctx: Context, query: SearchQuery, body: bytes) -> bytes:
    """The stored JSON as is (no parsing), or reduced by ``_summary``/``_elements``."""
    if query.summary in (None, "false") and not query.elements:
        return body
    resource = json.loads(body, parse_float=Decimal)  # decimals keep their digits
    if query.elements:
        return ctx.validator.dump(select_elements(resource, query.elements))
    assert query.summary is not None
    return ctx.validator.dump(summarize(resource, query.summary))


def _ignored(names: tuple[str, ...]) -> dict[str, Any]:
    issue = {
        "severity": "warning",
        "code": "not-supported",
        "diagnostics": f"Search parameters ignored: {', '.join(names)}",
    }
    return {"resource": outcome([issue]), "search": {"mode": "outcome"}}
