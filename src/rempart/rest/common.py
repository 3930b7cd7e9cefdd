"""Pieces shared by the interactions: checks, version headers, Prefer handling."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from rempart.errors import Category, RempartError
from rempart.fhir.outcome import information
from rempart.fhir.validation import RESOURCE_TYPES, valid_id
from rempart.rest.context import Context
from rempart.rest.http import FHIR_JSON, FhirRequest, FhirResponse
from rempart.storage.ports import Render, StoredVersion

ETAG = re.compile(r'(?:W/)?"(\d{1,9})"')
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


NOT_CLINICAL = frozenset({"AuditEvent"})
"""Types the clinical store never holds nor searches: the audit trail is its own store,
served at ``[base]/AuditEvent`` (``web/audit_search.py``), never through these
interactions, a Bundle entry, ``_type``, ``_include`` or a compartment."""


def check_type(type_: str | None) -> str:
    if type_ is None or type_ not in RESOURCE_TYPES:
        raise RempartError(Category.NOT_FOUND, "Unknown resource type")
    if type_ in NOT_CLINICAL:
        raise not_clinical()
    return type_


def not_clinical() -> RempartError:
    return RempartError(
        Category.INCORRECT, "AuditEvent is read at [base]/AuditEvent only, with the audit scope"
    )


def check_id(id_: str | None) -> str:
    # "." and ".." are valid FHIR ids but turn into path traversal in clients' URLs.
    if not valid_id(id_) or id_ in (".", ".."):
        raise RempartError(Category.INCORRECT, "Invalid resource id")
    return str(id_)


DIGITS = re.compile(r"[0-9]{1,9}")


def check_version(version: str | None) -> int:
    if version is None or not DIGITS.fullmatch(version):
        raise RempartError(Category.NOT_FOUND, "Unknown version")
    return int(version)


def if_match(request: FhirRequest) -> int | None:
    header = request.header("if-match")
    if header is None:
        return None
    match = ETAG.fullmatch(header.strip())
    if match is None:
        raise RempartError(Category.INCORRECT, 'If-Match must be a version ETag like W/"3"')
    return int(match.group(1))


def etag(version: int) -> str:
    return f'W/"{version}"'


def http_date(moment: datetime) -> str:
    return _http_date(int(moment.timestamp()))


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    """RFC 9110 date of a whole second; cached because formatting costs more than a read."""
    return formatdate(seconds, usegmt=True)


def instant(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def version_headers(
    request: FhirRequest, stored: StoredVersion, *, location: bool = True
) -> dict[str, str]:
    """ETag and Last-Modified, and the version's URL unless asked not to (plain reads)."""
    headers = {"etag": etag(stored.version), "last-modified": http_date(stored.last_updated)}
    if location:
        path = f"{stored.type}/{stored.id}/_history/{stored.version}"
        headers["content-location"] = f"{request.base_url}/{path}"
    return headers


def found(stored: StoredVersion | None) -> StoredVersion:
    """The stored version if it exists and is not a deletion; else 404 or 410."""
    if stored is None:
        raise RempartError(Category.NOT_FOUND, "Resource not found")
    if stored.deleted:
        raise RempartError(
            Category.GONE, "Resource deleted", headers={"etag": etag(stored.version)}
        )
    return stored


def not_modified(request: FhirRequest, stored: StoredVersion) -> bool:
    """If-None-Match / If-Modified-Since on reads (FHIR R4 §3.1.0.2, conditional read)."""
    none_match = request.header("if-none-match")
    if none_match is not None:  # RFC 9110 §13.1.2: "*" or a list of entity tags
        tags = [tag.strip() for tag in none_match.split(",")]
        versions = {int(m.group(1)) for tag in tags if (m := ETAG.fullmatch(tag))}
        return "*" in tags or stored.version in versions
    since = request.header("if-modified-since")
    if since is None:
        return False
    try:
        limit = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return limit.tzinfo is not None and stored.last_updated.replace(microsecond=0) <= limit


def load_resource(ctx: Context, request: FhirRequest, type_: str) -> dict[str, Any]:
    """The request body as a validated resource of the URL's type."""
    content_type = (request.header("content-type") or FHIR_JSON).split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise RempartError(Category.UNSUPPORTED_MEDIA, "Send the resource as application/fhir+json")
    resource = ctx.validator.load(request.body)
    if resource.get("resourceType") != type_:
        raise RempartError(Category.INCORRECT, "The body's resourceType does not match the URL")
    return resource


def renderer(ctx: Context, resource: dict[str, Any], id_: str) -> Render:
    """Stamps id and meta.versionId/lastUpdated, then serializes (decimals kept)."""

    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}

    def render(version: int, moment: datetime) -> bytes:
        meta = {
            **resource.get("meta", {}),
            "versionId": str(version),
            "lastUpdated": instant(moment),
        }
        # resourceType, id and meta first, as FHIR JSON is conventionally written.
        head = {"resourceType": resource["resourceType"], "id": id_, "meta": meta}
        return ctx.validator.dump({**head, **rest})

    return render


def written(request: FhirRequest, stored: StoredVersion, status: int) -> FhirResponse:
    """The answer to a successful write, shaped by ``Prefer: return=…``."""
    headers = version_headers(request, stored)
    headers["location"] = headers.pop("content-location")
    prefer = _preference(request)
    if prefer == "minimal" or stored.body is None:
        return FhirResponse(status, None, headers)
    if prefer == "OperationOutcome":
        return FhirResponse.json(status, information("Resource stored"), headers)
    return FhirResponse(status, stored.body, {"content-type": FHIR_JSON, **headers})


def _preference(request: FhirRequest) -> str:
    return prefer(request, "return") or "representation"


def prefer(request: FhirRequest, preference: str) -> str | None:
    """The value of one ``Prefer`` preference (RFC 7240), e.g. ``return`` or ``handling``."""
    for part in (request.header("prefer") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == preference:
            return value.strip().strip('"')
    return None
