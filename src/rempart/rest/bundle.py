"""batch and transaction: ``POST [base]`` with a Bundle (FHIR R4 §3.1.0.13).

A batch runs each entry on its own through the same interactions as a plain request
and answers each with its own status (an entry's failure is its OperationOutcome).
A transaction is all or nothing: identities are resolved first (new ids for creates,
conditional URLs and ``ifNoneExist`` through search), ``urn:uuid:``/``urn:oid:`` and
conditional references are rewritten, every resource is validated, then all writes go
to the store in one database transaction (:meth:`ResourceStore.write_all`); reads run
after the commit. Any failure fails the whole Bundle and leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from rempart.errors import Category, RempartError
from rempart.fhir.bundle import (
    Entry,
    entry_response,
    parse_bundle,
    processing_order,
    response_bundle,
)
from rempart.fhir.outcome import from_error
from rempart.fhir.patch import apply_fhirpath_patch
from rempart.fhir.references import (
    conditional_references,
    rewrite_references,
    unresolved_placeholders,
)
from rempart.rest.common import ETAG, check_id, check_type, etag, instant, renderer
from rempart.rest.conditional import condition, matches, one_at_most, query_string
from rempart.rest.context import Context
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse
from rempart.storage.ports import StoredVersion, WriteRequest

log = logging.getLogger("rempart.rest")


async def bundle(ctx: Context, request: FhirRequest) -> FhirResponse:
    try:
        document = json.loads(request.body, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise RempartError(Category.INCORRECT, "The body is not valid JSON") from None
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise RempartError(Category.INCORRECT, "POST to the base takes a batch or transaction")
    kind, entries = parse_bundle(
        document, max_entries=ctx.limits.max_bundle_entries, base=request.base_url
    )
    if kind == "batch":
        responses = [await _batch_entry(ctx, request, entry) for entry in entries]
    else:
        responses = await Transaction(ctx, request).run(entries)
    return FhirResponse(
        200, ctx.validator.dump(response_bundle(kind, responses)), {"content-type": FHIR_JSON}
    )


async def _batch_entry(ctx: Context, request: FhirRequest, entry: Entry) -> dict[str, Any]:
    try:
        return _as_entry(await dispatch(ctx, request, entry))
    except RempartError as error:
        return entry_response(error.category.value, outcome=from_error(error))
    except Exception:
        log.exception("batch entry failed")
        fault = RempartError(Category.FAULT, "Internal error")
        return entry_response(500, outcome=from_error(fault))


async def dispatch(ctx: Context, request: FhirRequest, entry: Entry) -> FhirResponse:
    """Run one entry through the interaction a plain request would reach."""
    from rempart.rest.routes import INTERACTIONS, shape_of  # routes imports this module

    path, _, _ = entry.url.partition("?")
    shape, names = shape_of(path.split("/"))
    method = "GET" if entry.method == "HEAD" else entry.method
    ctx.check(method, path)
    handler = next((h for m, s, h in INTERACTIONS if (m, s) == (method, shape)), None)
    if handler is None or shape in ("", "_search"):
        raise RempartError(Category.NOT_ALLOWED, "This interaction is not supported in a Bundle")
    headers = {"content-type": FHIR_JSON, **_entry_headers(entry)}
    if request.header("prefer"):
        headers["prefer"] = request.headers["prefer"]
    body = b"" if entry.resource is None else ctx.validator.dump(entry.resource)
    sub = FhirRequest(
        method, request.base_url, names.get("type"), names.get("id"), names.get("version"),
        names.get("target"), entry.query, headers, body, request.principal,
    )  # fmt: skip
    return await handler(ctx, sub)


def _entry_headers(entry: Entry) -> dict[str, str]:
    pairs = {
        "if-none-exist": entry.if_none_exist,
        "if-match": entry.if_match,
        "if-none-match": entry.if_none_match,
        "if-modified-since": entry.if_modified_since,
    }
    return {name: value for name, value in pairs.items() if value is not None}


def _as_entry(response: FhirResponse) -> dict[str, Any]:
    headers = response.headers
    entry = entry_response(
        response.status,
        location=headers.get("location") or headers.get("content-location"),
        etag=headers.get("etag"),
    )
    if response.body:
        entry["resource"] = orjson.Fragment(response.body)
    return entry


@dataclass
class Planned:
    """What a transaction does for one entry."""

    entry: Entry
    type: str
    id: str | None = None
    resource: dict[str, Any] | None = None
    existing: bool = False  # ifNoneExist matched: answer with the match, write nothing
    guard: Any = None
    expected_version: int | None = None
    written: StoredVersion | None = field(default=None)
    created: bool = False


class Transaction:
    def __init__(self, ctx: Context, request: FhirRequest) -> None:
        self.ctx, self.request = ctx, request
        self.mapping: dict[str, str] = {}

    async def run(self, entries: list[Entry]) -> list[dict[str, Any]]:
        ordered = processing_order(entries)
        plans = [await self._identify(entry) for entry in ordered]
        for plan in plans:
            if plan.resource is not None and plan.entry.method != "PATCH":
                plan.resource = await self._resolve(plan)
        writes = [plan for plan in plans if self._writes(plan)]
        results = await self.ctx.store.write_all([self._write_request(p) for p in writes])
        for plan, result in zip(writes, results, strict=True):
            plan.written, plan.created = result.version, result.created
        answers = {plan.entry.index: await self._answer(plan) for plan in plans}
        return [answers[entry.index] for entry in entries]

    async def _identify(self, entry: Entry) -> Planned:
        self.ctx.check("GET" if entry.method == "HEAD" else entry.method, entry.url)
        if entry.method in ("GET", "HEAD"):
            return Planned(entry, entry.type or "")
        type_ = check_type(entry.type)
        plan = Planned(entry, type_, resource=entry.resource)
        if entry.method == "POST":
            await self._identify_create(plan)
        elif entry.id is not None:
            plan.id = check_id(entry.id)
        else:
            await self._identify_conditional(plan)
        if entry.method == "PATCH":
            await self._patch(plan)
        if entry.full_url and plan.id:
            self.mapping[entry.full_url] = f"{type_}/{plan.id}"
        plan.expected_version = plan.expected_version or _if_match(entry)
        return plan

    async def _identify_create(self, plan: Planned) -> None:
        if plan.entry.if_none_exist:
            query = condition(self.ctx, plan.type, query_string(plan.entry.if_none_exist))
            existing = one_at_most(await matches(self.ctx, query))
            if existing is not None:
                plan.id, plan.existing = existing, True
                return
            plan.guard = query
        plan.id = str(uuid.uuid4())

    async def _identify_conditional(self, plan: Planned) -> None:
        query = condition(self.ctx, plan.type, plan.entry.query)
        existing = one_at_most(await matches(self.ctx, query))
        if existing is None and plan.entry.method == "PATCH":
            raise RempartError(Category.NOT_FOUND, "No resource matches a conditional patch")
        body_id = (plan.resource or {}).get("id") if plan.entry.method == "PUT" else None
        if existing is not None and body_id is not None and body_id != existing:
            raise RempartError(Category.INCORRECT, "A body's id differs from the matched resource")
        if existing is None and plan.entry.method == "PUT":
            plan.guard = query
            existing = body_id if isinstance(body_id, str) else str(uuid.uuid4())
        plan.id = existing

    async def _patch(self, plan: Planned) -> None:
        assert plan.id is not None
        current = await self.ctx.store.read(plan.type, plan.id)
        if current is None or current.body is None:
            raise RempartError(Category.NOT_FOUND, "The resource to patch does not exist")
        if (plan.resource or {}).get("resourceType") != "Parameters":
            raise RempartError(Category.INCORRECT, "A patch in a Bundle is a FHIRPath Patch")
        assert plan.resource is not None
        base = self.ctx.validator.load(current.body)
        plan.resource = apply_fhirpath_patch(base, self.ctx.validator.load(plan.resource))
        plan.expected_version = current.version

    async def _resolve(self, plan: Planned) -> dict[str, Any]:
        """References rewritten to the bundle's new ids and to conditional matches."""
        assert plan.resource is not None
        resource = rewrite_references(plan.resource, self.mapping)
        conditional = {}
        for reference in conditional_references(resource):
            type_, _, criteria = reference.partition("?")
            query = condition(self.ctx, check_type(type_), query_string(criteria))
            found = await matches(self.ctx, query)
            if len(found) != 1:
                raise RempartError(
                    Category.PRECONDITION_FAILED,
                    "A conditional reference must match exactly one resource",
                )
            conditional[reference] = f"{type_}/{found[0][1]}"
        resource = rewrite_references(resource, conditional) if conditional else resource
        if unresolved_placeholders(resource):
            raise RempartError(Category.INCORRECT, "A reference names no entry of the Bundle")
        return resource

    def _writes(self, plan: Planned) -> bool:
        writing = plan.entry.method in ("POST", "PUT", "PATCH", "DELETE")
        return writing and not plan.existing and plan.id is not None

    def _write_request(self, plan: Planned) -> WriteRequest:
        assert plan.id is not None
        render = None
        if plan.entry.method != "DELETE":
            assert plan.resource is not None
            resource = {**plan.resource, "id": plan.id}
            validated = self.ctx.validator.load(resource)
            render = renderer(self.ctx, validated, plan.id)
        return WriteRequest(
            plan.type,
            plan.id,
            render,
            expected_version=plan.expected_version,
            create_only=plan.entry.method == "POST",
            method=plan.entry.method,
            guard=plan.guard,
        )

    async def _answer(self, plan: Planned) -> dict[str, Any]:
        if plan.entry.method in ("GET", "HEAD"):
            try:
                return _as_entry(await dispatch(self.ctx, self.request, plan.entry))
            except RempartError as error:
                return entry_response(error.category.value, outcome=from_error(error))
        if plan.existing:
            assert plan.id is not None
            stored = await self.ctx.store.read(plan.type, plan.id)
            return self._version_entry(stored, 200) if stored else entry_response(200)
        if plan.entry.method == "DELETE":
            return entry_response(204)
        return self._version_entry(plan.written, 201 if plan.created else 200)

    def _version_entry(self, stored: StoredVersion | None, status: int) -> dict[str, Any]:
        if stored is None:
            return entry_response(status)
        entry = entry_response(
            status,
            location=f"{stored.type}/{stored.id}/_history/{stored.version}",
            etag=etag(stored.version),
            last_modified=instant(stored.last_updated),
        )
        if stored.body is not None and "return=minimal" not in (
            self.request.header("prefer") or ""
        ):
            entry["resource"] = orjson.Fragment(stored.body)
        return entry


def _if_match(entry: Entry) -> int | None:
    if entry.if_match is None:
        return None
    match = ETAG.fullmatch(entry.if_match.strip())
    if match is None:
        raise RempartError(Category.INCORRECT, 'ifMatch must be a version ETag like W/"3"')
    return int(match.group(1))
