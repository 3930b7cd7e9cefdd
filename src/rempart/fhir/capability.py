"""The CapabilityStatement Rempart publishes at ``/metadata`` (FHIR R4 §3.1.0.14).

It lists only what works: the interactions below are the ones ``rest/`` serves,
for every R4 resource type. Extend it in the same change that adds a capability.
"""

from __future__ import annotations

from typing import Any

from rempart.fhir.validation import RESOURCE_TYPES

TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
)
SYSTEM_INTERACTIONS = ("history-system",)


def capability_statement(version: str, date: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "Rempart", "version": version},
        "implementation": {"description": "Rempart FHIR R4 server"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "resource": [_resource(type_) for type_ in sorted(RESOURCE_TYPES)],
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            }
        ],
    }


def _resource(type_: str) -> dict[str, Any]:
    return {
        "type": type_,
        "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": False,
        "conditionalRead": "full-support",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
