"""The CapabilityStatement Rempart publishes at ``/metadata`` (FHIR R4 §3.1.0.14).

It lists only what works: the interactions below are the ones ``rest/`` serves,
for every R4 resource type but AuditEvent, which is the audit trail's. Extend it in
the same change that adds a capability.
"""

from __future__ import annotations

from typing import Any

from rempart.fhir.search.extract import skipped_for
from rempart.fhir.search.parameters import parameters_for
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
    "search-type",
)
SYSTEM_INTERACTIONS = ("history-system", "search-system", "batch", "transaction")
SPECIAL = {"_id": "token", "_lastUpdated": "date", "_list": "special"}
EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
AUDIT_PARAMS = {
    "date": "date",
    "patient": "reference",
    "agent": "reference",
    "entity": "reference",
    "type": "token",
    "subtype": "token",
    "outcome": "token",
    "action": "token",
}
AUDIT_EVENT: dict[str, Any] = {
    "type": "AuditEvent",
    "documentation": (
        "The audit trail, read-only: served from the hash-chained audit store to tokens "
        "holding system/rempart.audit (or user/rempart.audit, role security); a date "
        "range is mandatory. Nobody writes AuditEvent through the API."
    ),
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [{"name": name, "type": kind} for name, kind in AUDIT_PARAMS.items()],
}
"""AuditEvent is the audit trail's (``web/audit_search.py``), not a clinical resource."""


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
                "resource": [
                    AUDIT_EVENT if type_ == "AuditEvent" else _resource(type_)
                    for type_ in sorted(RESOURCE_TYPES)
                ],
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
                "searchParam": [
                    {"name": name, "type": type_}
                    for name, type_ in (("_id", "token"), ("_lastUpdated", "date"))
                ],
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
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchInclude": ["*"],
        "searchRevInclude": ["*"],
        "searchParam": _search_params(type_),
        **(
            {"operation": [{"name": "everything", "definition": EVERYTHING}]}
            if type_ == "Patient"
            else {}
        ),
    }


def _search_params(type_: str) -> list[dict[str, str]]:
    """The parameters that are indexed (unsearchable ones are left out), and the specials."""
    skipped = skipped_for(type_)
    found = {
        code: param.type
        for code, param in parameters_for(type_).items()
        if code not in skipped or code in SPECIAL
    }
    found.update(SPECIAL)
    return [{"name": name, "type": kind} for name, kind in sorted(found.items())]


def smart_security(origin: str) -> dict[str, Any]:
    """``rest.security`` for SMART on FHIR (SMART App Launch 2.2, §Conformance: the
    ``oauth-uris`` extension beside ``.well-known/smart-configuration``)."""
    names = ("authorize", "token", "introspect", "revoke")
    return {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": n, "valueUri": f"{origin}/auth/{n}"} for n in names],
            }
        ],
        "description": "SMART App Launch 2.2 and Backend Services; bearer tokens required.",
    }
