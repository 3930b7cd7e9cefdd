"""Batch and transaction Bundles, the part that needs neither HTTP nor storage
(FHIR R4 http.html §3.1.0.13 "Batch/Transaction", Bundle invariants bdl-7 and bdl-8).

``parse_bundle`` turns an untrusted request Bundle into checked :class:`Entry`
values; ``processing_order`` gives the order the spec fixes for a transaction;
``rewrite_references`` replaces placeholder and conditional references by the
identities the server assigned; ``entry_response`` and ``response_bundle`` build
the answer. Every failure is a :class:`RempartError` that names the entry by its
index and never echoes what the caller sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from rempart.errors import Category, Issue, RempartError
from rempart.fhir.validation import RESOURCE_TYPES, valid_id

__all__ = [
    "Entry",
    "Kind",
    "entry_response",
    "parse_bundle",
    "processing_order",
    "response_bundle",
]

Kind = Literal["batch", "transaction"]

# http.html §3.1.0.13.2: deletes, then creates, then updates and patches, then reads.
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_WRITES = frozenset({"DELETE", "POST", "PUT", "PATCH"})
# The R4 uuid and oid datatypes (datatypes.html#uuid, #oid).
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_SEGMENT = re.compile(r"[A-Za-z0-9\-._$*]{1,64}")
_SYSTEM_LEVEL = frozenset({"metadata", "_history", "_search"})
_PATCH_BODIES = frozenset({"Parameters", "Binary"})
_MAX_QUERY_FIELDS = 200
# Deep enough for any real resource, shallow enough to stay far from Python's stack limit.


@dataclass(frozen=True)
class Entry:
    """One checked ``Bundle.entry``.

    ``url`` is ``request.url`` made relative: the server base (when given) and one
    leading ``/`` are removed. ``method`` keeps ``HEAD``; it is processed as ``GET``.
    ``resource`` is the caller's dict, not a copy.
    """

    index: int
    method: str
    url: str
    type: str | None
    id: str | None
    query: tuple[tuple[str, str], ...]
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: str | None
    if_none_match: str | None
    if_modified_since: str | None


# --- parsing ----------------------------------------------------------------------


def parse_bundle(
    bundle: dict[str, Any], *, max_entries: int, base: str | None = None
) -> tuple[Kind, list[Entry]]:
    """Check a batch or transaction Bundle and return its kind and entries.

    ``base`` is the server's own base URL: an absolute ``request.url`` under it is
    accepted as the relative url it stands for; any other absolute url is refused.
    """
    kind = _kind(bundle)
    raw = _raw_entries(bundle, max_entries)
    entries = [_entry(item, index, base) for index, item in enumerate(raw)]
    _check_full_urls(entries)
    if kind == "transaction":
        _check_identities(entries)
    return kind, entries


def processing_order(entries: list[Entry]) -> list[Entry]:
    """Transaction order: DELETE, POST, PUT/PATCH, GET/HEAD, stable within each group."""
    return sorted(entries, key=lambda entry: _ORDER[entry.method])


def _error(
    index: int, text: str, element: str = "", category: Category = Category.INCORRECT
) -> RempartError:
    message = f"entry {index}: {text}"
    return RempartError(category, message, [Issue(message, f"Bundle.entry[{index}]{element}")])


def _kind(bundle: Any) -> Kind:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise RempartError(Category.INCORRECT, "The body is not a Bundle")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise RempartError(Category.INCORRECT, "Bundle.type must be batch or transaction")
    return cast(Kind, kind)


def _raw_entries(bundle: dict[str, Any], max_entries: int) -> list[Any]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise RempartError(Category.INCORRECT, "Bundle.entry must be an array")
    if len(raw) > max_entries:
        message = f"The Bundle has more than {max_entries} entries"
        raise RempartError(Category.TOO_LARGE, message)
    return raw


def _entry(item: Any, index: int, base: str | None) -> Entry:
    request = item.get("request") if isinstance(item, dict) else None
    if not isinstance(request, dict):
        raise _error(index, "the entry has no request", ".request")
    url = _relative_url(request.get("url"), index, base)
    path, _, raw_query = url.partition("?")
    segments = _segments(path, index)
    resource_type, resource_id = _target(segments)
    entry = Entry(
        index=index,
        method=_method(request.get("method"), index),
        url=url,
        type=resource_type,
        id=resource_id,
        query=_query(raw_query, index, ".request.url"),
        full_url=_full_url(item.get("fullUrl"), index),
        resource=_resource(item.get("resource"), index),
        **_conditions(request, index),
    )
    _check_request(entry, segments)
    return entry


def _method(value: Any, index: int) -> str:
    if isinstance(value, str) and value in _ORDER:
        return value
    raise _error(index, "request.method is missing or not supported", ".request.method")


def _relative_url(value: Any, index: int, base: str | None) -> str:
    if not isinstance(value, str) or not value:
        raise _error(index, "request.url is missing", ".request.url")
    root = base.rstrip("/") + "/" if base else None
    url: str = value[len(root) :] if root and value.startswith(root) else value
    if _SCHEME.match(url) or url.startswith("//"):
        raise _error(index, "request.url must be relative to this server", ".request.url")
    if not url.isprintable() or " " in url or "#" in url:
        raise _error(index, "request.url is not a valid url", ".request.url")
    return url.removeprefix("/")


def _segments(path: str, index: int) -> list[str]:
    if not path:
        return []
    segments = path.split("/")
    if any(not _SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
        raise _error(index, "request.url has an invalid path", ".request.url")
    head = segments[0]
    if head not in RESOURCE_TYPES and head not in _SYSTEM_LEVEL and not head.startswith("$"):
        raise _error(index, "request.url names no known resource type", ".request.url")
    return segments


def _target(segments: list[str]) -> tuple[str | None, str | None]:
    if not segments or segments[0] not in RESOURCE_TYPES:
        return None, None
    if len(segments) > 1 and valid_id(segments[1]):
        return segments[0], segments[1]
    return segments[0], None


def _query(raw: str, index: int, element: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=_MAX_QUERY_FIELDS)
    except ValueError:
        raise _error(index, "the query has too many parameters", element) from None
    return tuple(pairs)


def _full_url(value: Any, index: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _valid_full_url(value):
        raise _error(index, "fullUrl is not a valid uuid, oid or absolute url", ".fullUrl")
    return value


def _valid_full_url(value: str) -> bool:
    if value.startswith("urn:"):
        return bool(_UUID.fullmatch(value) or _OID.fullmatch(value))
    if not value.isprintable() or " " in value or "/_history/" in value:
        return False  # bdl-8: a fullUrl is never version specific.
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _resource(value: Any, index: int) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("resourceType") not in RESOURCE_TYPES:
        raise _error(index, "the resource has no known resourceType", ".resource")
    return value


def _conditions(request: dict[str, Any], index: int) -> dict[str, str | None]:
    names = {
        "if_none_exist": "ifNoneExist",
        "if_match": "ifMatch",
        "if_none_match": "ifNoneMatch",
        "if_modified_since": "ifModifiedSince",
    }
    found = {field: _text(request, name, index) for field, name in names.items()}
    if found["if_none_exist"] is not None:
        found["if_none_exist"] = found["if_none_exist"].removeprefix("?")
        _query(found["if_none_exist"], index, ".request.ifNoneExist")
    return found


def _text(request: dict[str, Any], name: str, index: int) -> str | None:
    value = request.get(name)
    if value is not None and not isinstance(value, str):
        raise _error(index, f"request.{name} must be a string", f".request.{name}")
    return value


# --- what each method may ask for ----------------------------------------------------


def _check_request(entry: Entry, segments: list[str]) -> None:
    if entry.method == "POST":
        _check_post(entry, segments)
    elif entry.method in ("PUT", "PATCH", "DELETE"):
        _check_instance_write(entry, segments)
    if entry.method == "PUT":
        _check_put(entry)
    elif entry.method == "PATCH":
        _check_patch(entry)


def _check_post(entry: Entry, segments: list[str]) -> None:
    if segments and segments[-1].startswith("$"):
        _require_resource(entry)  # an operation: its body is its own business
        return
    if len(segments) != 1 or entry.type is None or entry.query:
        raise _error(entry.index, "a POST url must be [type] or an operation", ".request.url")
    _require_resource(entry)
    _check_resource_type(entry)


def _check_instance_write(entry: Entry, segments: list[str]) -> None:
    direct = len(segments) == 2 and entry.id is not None
    # An empty condition would match every resource of the type.
    conditional = len(segments) == 1 and entry.type is not None and bool(entry.query)
    if not (direct or conditional):
        text = f"a {entry.method} url must be [type]/[id] or [type]?[search]"
        raise _error(entry.index, text, ".request.url")


def _check_put(entry: Entry) -> None:
    resource = _require_resource(entry)
    _check_resource_type(entry)
    # http.html#update: the body's id must equal the url's id, and must be present.
    if entry.id is not None and resource.get("id") != entry.id:
        raise _error(entry.index, "the resource id does not match the url", ".resource.id")


def _check_patch(entry: Entry) -> None:
    resource = _require_resource(entry)
    if resource["resourceType"] not in _PATCH_BODIES:
        raise _error(entry.index, "a PATCH body must be Parameters or Binary", ".resource")


def _require_resource(entry: Entry) -> dict[str, Any]:
    if entry.resource is None:
        raise _error(entry.index, f"a {entry.method} entry needs a resource", ".resource")
    return entry.resource


def _check_resource_type(entry: Entry) -> None:
    if entry.resource is not None and entry.resource["resourceType"] != entry.type:
        raise _error(entry.index, "the resource type does not match the url", ".resource")


# --- rules across entries ------------------------------------------------------------


def _check_full_urls(entries: list[Entry]) -> None:
    # bdl-7: fullUrl is unique, unless the entries are different versions.
    seen: dict[tuple[str, Any], int] = {}
    for entry in entries:
        if entry.full_url is None:
            continue
        key = (entry.full_url, _version(entry.resource))
        if key in seen:
            text = f"fullUrl repeats the one of entry {seen[key]}"
            raise _error(entry.index, text, ".fullUrl")
        seen[key] = entry.index


def _version(resource: dict[str, Any] | None) -> Any:
    meta = resource.get("meta") if resource else None
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) else None


def _check_identities(entries: list[Entry]) -> None:
    # http.html §3.1.0.13.2: a transaction fails when two writes share an identity.
    seen: dict[str, int] = {}
    for entry in entries:
        key = _identity(entry)
        if key is None:
            continue
        if key in seen:
            text = f"the transaction changes the resource of entry {seen[key]} again"
            raise _error(entry.index, text, ".request")
        seen[key] = entry.index


def _identity(entry: Entry) -> str | None:
    if entry.method not in _WRITES or entry.type is None:
        return None
    if entry.method == "POST":
        if entry.url.partition("?")[0] != entry.type:
            return None  # an operation, not a create
        condition = entry.if_none_exist
        query = tuple(parse_qsl(condition, keep_blank_values=True)) if condition else ()
        return _condition_key(entry.type, query) if query else None
    if entry.id is not None:
        return f"{entry.type}/{entry.id}"
    return _condition_key(entry.type, entry.query)


def _condition_key(resource_type: str, query: tuple[tuple[str, str], ...]) -> str:
    return f"{resource_type}?{urlencode(sorted(query))}"


# --- the response --------------------------------------------------------------------


def entry_response(
    status: int,
    *,
    location: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    outcome: dict[str, Any] | None = None,
    resource: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of a batch-response or transaction-response Bundle."""
    response: dict[str, Any] = {"status": f"{status} {HTTPStatus(status).phrase}"}
    optional = {"location": location, "etag": etag, "lastModified": last_modified}
    response.update({name: value for name, value in optional.items() if value is not None})
    if outcome is not None:
        response["outcome"] = outcome
    entry: dict[str, Any] = {"response": response}
    if resource is not None:
        entry["resource"] = resource
    return entry


def response_bundle(kind: Kind, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """The Bundle answering a batch or transaction, entries in request order."""
    if kind not in ("batch", "transaction"):
        raise ValueError("kind must be 'batch' or 'transaction'")
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": list(responses)}
