"""history: instance, type and system (FHIR R4 §3.1.0.11), newest first.

Supports ``_since``, ``_at``, ``_count`` and paging through signed cursors
(``_cursor``) that stay correct while writes happen: a page is "everything older
than the last entry of the previous page".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from rempart.errors import Category, RempartError
from rempart.fhir.dates import parse_instant, parse_period
from rempart.rest.common import DIGITS, check_id, check_type, etag, instant
from rempart.rest.context import Context
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse
from rempart.storage.ports import HistoryQuery, StoredVersion

FILTERS = {"_since", "_at", "_count"}
"""What a history query is: kept in paging links and bound into cursors."""
KNOWN = {*FILTERS, "_cursor", "_format"}


async def history(ctx: Context, request: FhirRequest) -> FhirResponse:
    query = _query(ctx, request)
    versions = await ctx.store.history(query)
    instance = query.id is not None and query.type is not None
    if not versions and instance and await ctx.store.read(str(query.type), str(query.id)) is None:
        raise RempartError(Category.NOT_FOUND, "Resource not found")
    return FhirResponse(200, _bundle(ctx, request, query, versions), {"content-type": FHIR_JSON})


def _query(ctx: Context, request: FhirRequest) -> HistoryQuery:
    type_ = check_type(request.type) if request.type else None
    id_ = check_id(request.id) if request.id else None
    unknown = {key for key, _ in request.query} - KNOWN
    if unknown:
        raise RempartError(Category.INCORRECT, "Unsupported parameter for history")
    since, at, cursor = request.param("_since"), request.param("_at"), request.param("_cursor")
    return HistoryQuery(
        type=type_,
        id=id_,
        since=parse_instant(since) if since else None,
        at=parse_period(at) if at else None,
        before_seq=ctx.cursors.read(_scope(request), cursor) if cursor else None,
        count=count_of(ctx, request.param("_count")),
    )


def count_of(ctx: Context, value: str | None) -> int:
    if value is None:
        return ctx.limits.default_count
    if not DIGITS.fullmatch(value):
        raise RempartError(Category.INCORRECT, "_count must be a non-negative integer")
    return max(1, min(int(value), ctx.limits.max_count))


def _scope(request: FhirRequest) -> str:
    """What a cursor is bound to: the path and the filters, not the page position."""
    filters = [(k, v) for k, v in request.query if k in FILTERS]
    return f"history|{request.type}|{request.id}|{urlencode(filters)}"


def _bundle(
    ctx: Context, request: FhirRequest, query: HistoryQuery, rows: list[StoredVersion]
) -> bytes:
    links = [{"relation": "self", "url": _url(request, request.param("_cursor"))}]
    if len(rows) == query.count:
        next_cursor = ctx.cursors.issue(_scope(request), rows[-1].seq)
        links.append({"relation": "next", "url": _url(request, next_cursor)})
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "link": links,
        "entry": [_entry(request, row) for row in rows],
    }
    return orjson.dumps(bundle)


def _url(request: FhirRequest, cursor: str | None) -> str:
    path = "/".join(p for p in (request.type, request.id, "_history") if p)
    params = [(k, v) for k, v in request.query if k in FILTERS]
    if cursor:
        params.append(("_cursor", cursor))
    return f"{request.base_url}/{path}" + (f"?{urlencode(params)}" if params else "")


def _entry(request: FhirRequest, row: StoredVersion) -> dict[str, Any]:
    url = f"{row.type}/{row.id}"
    method = row.method
    status = "201 Created" if row.version == 1 and method in ("POST", "PUT") else "200 OK"
    if row.deleted:
        status = "204 No Content"
    entry: dict[str, Any] = {"fullUrl": f"{request.base_url}/{url}"}
    if row.body is not None:
        entry["resource"] = orjson.Fragment(row.body)
    entry["request"] = {"method": method, "url": row.type if method == "POST" else url}
    entry["response"] = {
        "status": status,
        "etag": etag(row.version),
        "lastModified": instant(row.last_updated),
    }
    return entry
