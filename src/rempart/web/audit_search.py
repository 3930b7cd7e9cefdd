"""``GET /fhir/AuditEvent`` and ``GET /fhir/AuditEvent/{seq}``: the audit trail read as
FHIR AuditEvents (docs/audit.md, "Searching the audit").

The FHIR endpoint sends every request on the AuditEvent type here (``Routes.only``),
after the gate: authentication, rate limit, and ``access.check_audit`` (the audit
scope to read; no writing, 405). The id of a record is its sequence number in the
chain; the resource is the stored body with ``id`` and ``meta.versionId`` added as it
is sent, the stored bytes never change. Pages follow ``(recorded, seq)`` through a
``_cursor`` in the ``next`` link: it only says where the next page starts, and the
whole query, the scope check included, runs again for each page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.fhir.outcome import outcome
from rempart.rest.common import prefer
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse
from rempart.security.audit.ports import AuditHit, AuditPage, AuditSearch
from rempart.security.audit.search import (
    AuditSearchLimits,
    ParsedAuditSearch,
    parse_audit_search,
)
from rempart.security.audit.trail import unavailable
from rempart.web.fhir_app import Interaction

TYPE = "AuditEvent"
SEQ_DIGITS = 19


class AuditRoutes:
    """The AuditEvent interactions, reading the store the lifespan opened."""

    def __init__(self, settings: Settings, store_of: Callable[[], AuditSearch | None]) -> None:
        limits = settings.limits
        self._limits = AuditSearchLimits(
            settings.audit.max_search_days, limits.default_count, limits.max_count
        )
        self._store_of = store_of

    def routes(self) -> list[tuple[str, str, Interaction]]:
        return [("GET", "T", self.search), ("GET", "T/I", self.read)]

    def _store(self) -> AuditSearch:
        store = self._store_of()
        if store is None:
            raise unavailable()
        return store

    async def search(self, request: FhirRequest) -> FhirResponse:
        strict = prefer(request, "handling") == "strict"
        parsed = parse_audit_search(request.query, self._limits, strict=strict)
        page = await self._store().search(parsed.query)
        body = orjson.dumps(_bundle(request, parsed, page))
        return FhirResponse(200, body, {"content-type": FHIR_JSON})

    async def read(self, request: FhirRequest) -> FhirResponse:
        id_ = request.id or ""
        body = None
        if id_.isascii() and id_.isdigit() and len(id_) <= SEQ_DIGITS and id_[0] != "0":
            body = await self._store().event(int(id_))
        if body is None:
            raise RempartError(Category.NOT_FOUND, "Resource not found")
        headers = {"content-type": FHIR_JSON, "etag": 'W/"1"'}
        return FhirResponse(200, orjson.dumps(_resource(int(id_), body)), headers)


def _bundle(request: FhirRequest, parsed: ParsedAuditSearch, page: AuditPage) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    first = parsed.query.after is None
    total = page.total
    if total is None and first and not page.more:
        total = len(page.hits)  # the whole result is on this page
    if total is not None:
        bundle["total"] = total
    bundle["link"] = _links(request, parsed, page)
    entries = [_entry(request, hit) for hit in page.hits]
    if parsed.ignored:
        issue = {
            "severity": "warning",
            "code": "not-supported",
            "diagnostics": f"Search parameters ignored: {', '.join(parsed.ignored)}",
        }
        entries.append({"resource": outcome([issue]), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def _links(
    request: FhirRequest, parsed: ParsedAuditSearch, page: AuditPage
) -> list[dict[str, str]]:
    def link(relation: str, after: tuple[int, int] | None) -> dict[str, str]:
        params = list(parsed.kept)
        if after is not None:
            params.append(("_cursor", f"{after[0]}.{after[1]}"))
        return {"relation": relation, "url": f"{request.base_url}/{TYPE}?{urlencode(params)}"}

    links = [link("self", parsed.query.after)]
    if page.more and page.hits:
        last = page.hits[-1]
        links.append(link("next", (last.recorded, last.seq)))
    return links


def _entry(request: FhirRequest, hit: AuditHit) -> dict[str, Any]:
    return {
        "fullUrl": f"{request.base_url}/{TYPE}/{hit.seq}",
        "resource": _resource(hit.seq, hit.body),
        "search": {"mode": "match"},
    }


def _resource(seq: int, body: bytes) -> dict[str, Any]:
    """The stored event as a resource: its sequence number as id, version 1."""
    event = orjson.loads(body)
    meta = event.get("meta") if isinstance(event.get("meta"), dict) else {}
    return {**event, "id": str(seq), "meta": {**meta, "versionId": "1"}}
