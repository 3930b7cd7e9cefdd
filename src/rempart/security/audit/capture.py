"""Audit capture: what one answered request becomes in the audit trail.

An :class:`Exchange` is what the gateway knew when the answer left: who asked (the
token's principal, or what an unauthenticated caller claimed), from where, what was
asked, and how it ended. :func:`audit_events` turns it into IHE BALP-style FHIR R4
AuditEvents, one per interaction and one per patient concerned:

- an interaction on one resource (read, vread, create, update, patch, delete) that
  concerns at most one patient gives one event, naming that patient if any;
- anything else that concerns patients (a search, a history, ``$everything``, a
  Bundle, or one resource linking several patients) gives one event for the
  interaction and one more per patient, each naming the patient and the request id.

The patients concerned are those named by the request (path, search parameters,
request body) and, when the request succeeded, those whose data the answer carries
(a ``Patient`` entry, or a reference ``Patient/ID`` in a returned resource). Never
recorded: the returned data, a token, a password, a request body.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from rempart.security.principal import Principal

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
EVENT_TYPES = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
SUBTYPES = "urn:rempart:audit-subtype"
"""Rempart's own subtypes, for what is not a FHIR interaction (token, login, admin…)."""
ENTITY_TYPES = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLES = "http://terminology.hl7.org/CodeSystem/object-role"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPES = "http://terminology.hl7.org/CodeSystem/security-source-type"
CLIENT_SYSTEM = "urn:rempart:client"
USER_SYSTEM = "urn:rempart:user"

REST_TYPE = {"system": EVENT_TYPES, "code": "rest", "display": "RESTful Operation"}
AUTH_TYPE = {"system": DCM, "code": "110114", "display": "User Authentication"}
ADMIN_TYPE = {"system": DCM, "code": "110113", "display": "Security Alert"}
SOURCE = {
    "site": "rempart",
    "observer": {"display": "rempart"},
    "type": [{"system": SOURCE_TYPES, "code": "4", "display": "Application Server"}],
}
ACTIONS = {"create": "C", "update": "U", "patch": "U", "delete": "D"}
"""The AuditEvent action of a subtype; reads are R, the rest (search, operation…) E."""
READS = {"read", "vread"}
SINGLE = {"read", "vread", "create", "update", "patch", "delete"}
HIDDEN_PARAMS = {"access_token", "client_assertion", "password", "code", "refresh_token"}
"""Never recorded, even if a caller puts them in a query string."""

PATIENT_REF = re.compile(
    rb'"reference"\s{0,8}:\s{0,8}"(?:[^"]{0,512}/)?Patient/([A-Za-z0-9\-.]{1,64})[/"]'
)
PATIENT_ENTRY = re.compile(rb'"fullUrl":"[^"]{0,512}/Patient/([A-Za-z0-9\-.]{1,64})"')
PATIENT_LOCATION = re.compile(rb'"location":"(?:[^"]{0,512}/)?Patient/([A-Za-z0-9\-.]{1,64})/')
PATIENT_SELF = re.compile(rb'\{"resourceType":"Patient","id":"([A-Za-z0-9\-.]{1,64})"')
SCANS = (
    (b'"fullUrl":"', PATIENT_ENTRY),
    (b'"reference"', PATIENT_REF),
    (b'"location":"', PATIENT_LOCATION),
)
"""Each pattern run on an answer, after the literal text every match of it contains."""
PATIENT_VALUE = re.compile(r"(?:^|[/,])Patient/([A-Za-z0-9\-.]{1,64})")
PATIENT_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
PURPOSE = re.compile(r"[A-Z]{2,16}")
PATIENT_PARAMS = {"patient", "subject", "beneficiary", "_id"}
MAX_PATIENTS = 10_000
"""Per request; a search answers at most ``max_count`` (500) entries plus includes."""


@dataclass
class Exchange:
    """One answered request, as the gateway saw it."""

    request_id: str
    recorded: str
    """When the answer was ready, ISO 8601 in UTC."""
    method: str
    path: str
    address: str
    status: int
    subtype: str
    """A FHIR interaction (``read``, ``search-type``…) or a Rempart one (``token``…)."""
    principal: Principal | None = None
    client: str | None = None
    """For a caller without a valid token: the client id it claimed."""
    user: str | None = None
    """For a login: the user name given."""
    token_id: str | None = None
    """For a token answer: the id (``jti``) of the access token issued."""
    resource: str | None = None
    """``Type/id`` or ``Type/id/_history/v`` for an interaction on one resource."""
    query: tuple[tuple[str, str], ...] = ()
    detail: str | None = None
    """Why it failed, in the words of the answer (never a secret)."""
    purpose: str | None = None
    patients: list[str] = field(default_factory=list)
    """Ids of the patients concerned, in the order found, without repeats."""


def audit_events(exchange: Exchange) -> list[dict[str, Any]]:
    """The AuditEvents of one exchange: one, or one plus one per patient concerned."""
    base = _event(exchange)
    patients = exchange.patients
    if exchange.subtype in SINGLE and len(patients) <= 1:
        if patients:
            _name_patient(base, patients[0])
        return [base]
    events = [base]
    for patient in patients:
        event = _event(exchange)
        _name_patient(event, patient)
        events.append(event)
    return events


def _name_patient(event: dict[str, Any], patient: str) -> None:
    """Adds the patient entity; when the resource is that Patient, marks it instead."""
    entities: list[dict[str, Any]] = event["entity"]
    reference = f"Patient/{patient}"
    for entity in entities:
        what = entity.get("what", {}).get("reference", "")
        if what == reference or what.startswith(reference + "/_history/"):
            entity.update(_patient_entity(patient), what={"reference": what})
            return
    entities.insert(0, _patient_entity(patient))


def _event(ex: Exchange) -> dict[str, Any]:
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {"profile": [BALP + _profile(ex.subtype)]},
        "type": _type(ex.subtype),
        "subtype": [{"system": _subtype_system(ex.subtype), "code": ex.subtype}],
        "action": _action(ex.subtype),
        "recorded": ex.recorded,
        "outcome": _outcome(ex.status),
        "outcomeDesc": f"{ex.status} {ex.detail}" if ex.detail else str(ex.status),
        "agent": _agents(ex),
        "source": SOURCE,
        "entity": _entities(ex),
    }
    if ex.purpose:
        event["purposeOfEvent"] = [{"coding": [{"system": ACT_REASON, "code": ex.purpose}]}]
    return event


def _profile(subtype: str) -> str:
    action = _action(subtype)
    if subtype in SUBTYPE_NAMES:
        return (
            "Query"
            if action == "E"
            else {"C": "Create", "R": "Read", "U": "Update"}.get(action, "Delete")
        )
    return "Read" if action == "R" else "Update"


def _type(subtype: str) -> dict[str, str]:
    if subtype in SUBTYPE_NAMES:
        return REST_TYPE
    return ADMIN_TYPE if subtype.startswith("admin") else AUTH_TYPE


def _subtype_system(subtype: str) -> str:
    return RESTFUL if subtype in SUBTYPE_NAMES else SUBTYPES


def _action(subtype: str) -> str:
    if subtype in READS:
        return "R"
    if subtype in ACTIONS:
        return ACTIONS[subtype]
    if subtype.startswith("admin-"):
        return {"admin-create": "C", "admin-delete": "D"}.get(subtype, "R")
    return "E"


def _outcome(status: int) -> str:
    """0 success, 4 minor failure (the caller's fault), 8 serious failure (ours)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _agents(ex: Exchange) -> list[dict[str, Any]]:
    network = {"address": ex.address, "type": "2"}
    principal = ex.principal
    if principal is None:
        who: dict[str, Any] = {"display": "unauthenticated"}
        if ex.client:
            who = {"identifier": {"system": CLIENT_SYSTEM, "value": ex.client}}
        agent: dict[str, Any] = {"type": _application(), "who": who, "requestor": ex.user is None}
        agent["network"] = network
        if ex.token_id:
            agent["policy"] = [ex.token_id]
        agents = [agent]
        if ex.user:
            user = {"identifier": {"system": USER_SYSTEM, "value": ex.user}}
            agents.append({"type": _human(), "who": user, "requestor": True, "network": network})
        return agents
    client = {
        "type": _application(),
        "who": {"identifier": {"system": CLIENT_SYSTEM, "value": principal.client_id}},
        "requestor": not principal.is_user,
        "network": network,
        "policy": [principal.token_id],
    }
    if not principal.is_user:
        return [client]
    who = {"identifier": {"system": USER_SYSTEM, "value": principal.subject}}
    if principal.fhir_user:
        who["reference"] = principal.fhir_user
    return [client, {"type": _human(), "who": who, "requestor": True, "network": network}]


def _application() -> dict[str, Any]:
    return {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]}


def _human() -> dict[str, Any]:
    return {
        "coding": [{"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}]
    }


def _entities(ex: Exchange) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if ex.resource:
        entities.append({"what": {"reference": ex.resource}, "type": _entity_type("2")})
    shown = [(k, v) for k, v in ex.query if k not in HIDDEN_PARAMS]
    if shown or ex.subtype.startswith(("search", "history")) or ex.subtype not in SUBTYPE_NAMES:
        text = f"{ex.method} {ex.path}" + (f"?{urlencode(shown)}" if shown else "")
        entities.append(
            {
                "type": _entity_type("2"),
                "role": {"system": OBJECT_ROLES, "code": "24", "display": "Query"},
                "query": base64.b64encode(text.encode()).decode(),
            }
        )
    entities.append(
        {
            "what": {"identifier": {"value": ex.request_id}},
            "type": {"system": BALP_ENTITY, "code": "XrequestId"},
        }
    )
    return entities


def _entity_type(code: str) -> dict[str, str]:
    return {"system": ENTITY_TYPES, "code": code}


def _patient_entity(patient: str) -> dict[str, Any]:
    return {
        "what": {"reference": f"Patient/{patient}"},
        "type": _entity_type("1"),
        "role": {"system": OBJECT_ROLES, "code": "1", "display": "Patient"},
    }


# --- the FHIR interaction of a request and the patients it concerns ---

SHAPES = {
    ("GET", ""): "search-system",
    ("POST", "_search"): "search-system",
    ("POST", ""): "batch",
    ("GET", "T"): "search-type",
    ("POST", "T/_search"): "search-type",
    ("PUT", "T"): "update",
    ("DELETE", "T"): "delete",
    ("PATCH", "T"): "patch",
    ("GET", "T/I/C"): "search-type",
    ("GET", "T/I/$"): "operation",
    ("GET", "_history"): "history-system",
    ("GET", "T/_history"): "history-type",
    ("POST", "T"): "create",
    ("GET", "T/I"): "read",
    ("PUT", "T/I"): "update",
    ("DELETE", "T/I"): "delete",
    ("PATCH", "T/I"): "patch",
    ("GET", "T/I/_history"): "history-instance",
    ("GET", "T/I/_history/V"): "vread",
    ("GET", "metadata"): "capabilities",
}


SUBTYPE_NAMES = {*SHAPES.values(), "transaction", "operation"}
"""The restful-interaction codes; any other subtype is one of Rempart's own."""


def fhir_subtype(method: str, shape: str, body: bytes = b"") -> str:
    """The restful-interaction code of a request on ``/fhir``; ``operation`` if unknown.
    A Bundle posted to the base is a ``transaction`` or a ``batch`` by its type."""
    subtype = SHAPES.get((method, shape), "operation")
    if subtype == "batch" and b'"transaction"' in body:
        return "transaction"
    return subtype


def fhir_resource(names: dict[str, str]) -> str | None:
    """``Type/id`` (or ``Type/id/_history/v``) named by the path, if any."""
    type_, id_ = names.get("type"), names.get("id")
    if not type_ or not id_:
        return None
    version = names.get("version")
    return f"{type_}/{id_}/_history/{version}" if version else f"{type_}/{id_}"


def requested_patients(
    names: dict[str, str], query: Iterable[tuple[str, str]], body: bytes
) -> list[str]:
    """The patients a request names: ``Patient/ID`` in its path, a patient search
    parameter, or a reference in the body it sends."""
    found: dict[str, None] = {}
    if names.get("type") == "Patient" and names.get("id"):
        found[names["id"]] = None
    for key, value in query:
        name = key.split(":")[0].split(".")[0]
        if name in PATIENT_PARAMS:
            _values(name, value, names.get("type"), found)
    if body:
        _found_in(body, found)
    return list(found)[:MAX_PATIENTS]


def _values(name: str, value: str, type_: str | None, found: dict[str, None]) -> None:
    for match in PATIENT_VALUE.finditer(value):
        found[match.group(1)] = None
    if name == "patient" or (name == "_id" and type_ == "Patient"):
        for part in value.split(","):
            if PATIENT_ID.fullmatch(part):
                found[part] = None


def answered_patients(found: list[str], body: bytes | None) -> list[str]:
    """``found`` and the patients whose data an answer carries, without repeats."""
    merged = dict.fromkeys(found)
    if body:
        _found_in(body, merged)
    return list(merged)[:MAX_PATIENTS]


def _found_in(body: bytes, found: dict[str, None]) -> None:
    match = PATIENT_SELF.match(body)
    if match:
        found[match.group(1).decode()] = None
    if b"Patient/" not in body:  # in every match below; most answers have none
        return
    for marker, pattern in SCANS:
        if marker in body:  # a substring search is much cheaper than a regex scan
            for match in pattern.finditer(body):
                found[match.group(1).decode()] = None


def purpose_of(header: str | None) -> str | None:
    """The purpose of use the caller declared (``X-Purpose-Of-Use``, a v3-ActReason code
    such as ``TREAT`` or ``ETREAT``), when well-formed."""
    if header and PURPOSE.fullmatch(header):
        return header
    return None
