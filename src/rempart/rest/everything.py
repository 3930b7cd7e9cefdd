"""Patient ``$everything`` (FHIR R4 §6.1.0.6.x, OperationDefinition Patient-everything).

The patient and every resource of its compartment (read from the compartment index),
with the practitioners, organizations, locations and medications they refer to; paged
like a search, with ``_since``, ``_type`` and ``_count``. Referenced resources are
limited to types outside the patient compartment, so that following a reference never
brings in another patient's record.
"""

from __future__ import annotations

from rempart.errors import Category, RempartError
from rempart.fhir.dates import parse_instant
from rempart.fhir.search.query import Include, InCompartment, SearchQuery
from rempart.rest.common import check_id, found
from rempart.rest.context import Context
from rempart.rest.history import count_of
from rempart.rest.http import FhirRequest, FhirResponse
from rempart.rest.search import compartment_members, respond
from rempart.storage.ports import to_micros

KNOWN = {"_since", "_type", "_count", "_cursor", "_format"}
"""``start`` and ``end`` (care dates) are not supported: refused rather than ignored."""
REFERENCED = ("Practitioner", "PractitionerRole", "Organization", "Location", "Medication")


async def everything(ctx: Context, request: FhirRequest) -> FhirResponse:
    if request.type != "Patient" or request.target != "$everything":
        raise RempartError(Category.NOT_FOUND, "Unknown operation")
    id_ = check_id(request.id)
    found(await ctx.store.read("Patient", id_))
    if {key for key, _ in request.query} - KNOWN:
        raise RempartError(Category.INCORRECT, "Unsupported parameter for $everything")
    since = request.param("_since")
    query = SearchQuery(
        types=_types(request),
        where=(InCompartment("Patient", id_),),
        count=count_of(ctx, request.param("_count")),
        includes=tuple(Include("*", "*", target, False, False) for target in REFERENCED),
        since=to_micros(parse_instant(since)) if since else None,
    )
    return await respond(ctx, request, query, f"Patient/{id_}/$everything", request.query)


def _types(request: FhirRequest) -> tuple[str, ...]:
    members = compartment_members("Patient")
    wanted = [t.strip() for k, v in request.query if k == "_type" for t in v.split(",")]
    if any(t not in members for t in wanted):
        raise RempartError(Category.INCORRECT, "_type lists a type outside the patient record")
    return tuple(dict.fromkeys(wanted)) or members
