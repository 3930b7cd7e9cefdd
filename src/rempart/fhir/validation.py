"""Validation of FHIR R4 resources (FHIR R4 §2.1.0.1 JSON, §2.4 Validation).

Rempart validates every write against the R4 definitions: structure, cardinality,
data types, primitive formats, ids and required terminology bindings. The
structural work is done by ``fhirkit`` (Rust, generated from the official R4
specification), wrapped behind :class:`Validator` so that it can be replaced
without touching callers; required bindings are checked by ``fhir/bindings.py``
from tables derived from the R4 ValueSets (``scripts/derive_fhir_tables.py``).
``fhirkit`` keeps decimals as written (``72.50`` stays ``72.50``) both ways.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

import fhirkit
import orjson

from rempart.errors import Category, Issue, RempartError
from rempart.fhir.bindings import check_required_bindings

# FHIR R4 §2.26.0.1 (id datatype): 1 to 64 of A-Z a-z 0-9 - .
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
RESOURCE_TYPES: frozenset[str] = frozenset(fhirkit.RESOURCE_TYPES)
MAX_ISSUES = 20


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


class Validator(Protocol):
    """Turns untrusted bytes or dicts into a checked resource, or raises."""

    def load(self, data: bytes | Mapping[str, Any]) -> dict[str, Any]:
        """Parse and validate; return the resource as a dict (decimals as Decimal)."""

    def dump(self, resource: Mapping[str, Any]) -> bytes:
        """Serialize a resource as canonical FHIR JSON, keeping decimal precision."""


class FhirkitValidator:
    """The R4 validator backed by fhirkit-rs."""

    def load(self, data: bytes | Mapping[str, Any]) -> dict[str, Any]:
        parsed = _parse(data)
        _check_type(parsed.resource_type)
        errors = [i for i in parsed.issues if i.severity == "error"]
        if errors:
            issues = [Issue(_safe(i.message), _safe_path(i)) for i in errors[:MAX_ISSUES]]
            raise RempartError(Category.INCORRECT, "The resource is not valid FHIR R4", issues)
        resource = parsed.to_dict()
        if "id" in resource and not valid_id(resource["id"]):
            raise RempartError(Category.INCORRECT, "Resource id is not a valid FHIR id")
        binding_issues = check_required_bindings(resource)
        if binding_issues:
            raise RempartError(
                Category.INCORRECT,
                "A code is outside its required value set",
                binding_issues[:MAX_ISSUES],
            )
        return resource

    def dump(self, resource: Mapping[str, Any]) -> bytes:
        """Serialize a resource that ``load`` returned (so already valid)."""
        return orjson.dumps(resource, default=decimal_default)


def decimal_default(value: object) -> orjson.Fragment:
    """Decimals as written: ``0.00000010`` stays so (``str`` would give ``1.0E-7``)."""
    if isinstance(value, Decimal) and value.is_finite():
        exponent = value.as_tuple().exponent
        return orjson.Fragment(
            format(value, "f") if isinstance(exponent, int) and exponent <= 0 else str(value)
        )
    raise TypeError("not JSON serializable")


def _parse(data: bytes | Mapping[str, Any]) -> fhirkit.Resource:
    if isinstance(data, bytes | bytearray) and not data.strip():
        raise RempartError(Category.INCORRECT, "The request body is empty")
    try:
        return fhirkit.parse(data if isinstance(data, bytes | bytearray) else dict(data))
    except fhirkit.ParseError as exc:
        # fhirkit's parse messages give a line and column and a reason, never the input.
        raise RempartError(
            Category.INCORRECT, "The body is not valid FHIR JSON", [Issue(_safe(str(exc)))]
        ) from None
    except (ValueError, TypeError):
        raise RempartError(Category.INCORRECT, "The body is not valid FHIR JSON") from None


def _check_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise RempartError(Category.INCORRECT, "Unknown or missing resourceType")


_KEYWORD = re.compile(
    r"\b(is not|is outside|expected|unknown|required|only one|an empty|must|not allowed)\b"
)
_POSITION = re.compile(r"line \d+, column \d+")
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*")


def _safe(message: str) -> str:
    """A validator message without the caller's input: values come before the verdict
    ("<value> is not a valid date"), so keep the verdict only, and never quoted text."""
    match = _KEYWORD.search(message)
    verdict = message[match.start() :] if match else "invalid value"
    verdict = re.sub(r'"[^"]*"|`[^`]*`', "…", verdict)[:200]
    position = _POSITION.match(message)
    return f"{position[0]}: {verdict}" if position else verdict


def _safe_path(issue: fhirkit.Issue) -> str:
    """An unknown element's name is the caller's input: report where it was, not its name."""
    path = issue.path
    if "unknown element" in issue.message:
        path = path.rpartition(".")[0] or path.partition("[")[0]
    # A key may itself contain dots: stop at the first segment that is not an element.
    kept = []
    for segment in path.split("."):
        if not _SEGMENT.fullmatch(segment):
            break
        kept.append(segment)
    return ".".join(kept)[:200]
