"""The search keys of one audit record (what ``GET /fhir/AuditEvent`` filters on).

:func:`index_of` reads an AuditEvent dict, as the capture builds it
(``security/audit/capture.py``), and returns the row the stores keep beside the
record, in the same transaction (docs/audit.md, "Searching the audit"). The index is
derived data: it is not part of the chain, and verification never reads it.

Any event is accepted, even one lacking most fields (the ``audit-outage`` event of
``trail.py``): what is missing is simply not indexed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

PATIENT_CODE = "1"
"""``audit-entity-type`` 1 (Person) and ``object-role`` 1 (Patient): a patient entity."""
KINDS = ("patient", "agent", "entity")
MAX_VALUE = 512
"""Longest indexed value; longer ones (never produced by the capture) are cut."""


class IndexRow(NamedTuple):  # a tuple: built for every event appended, cheaply
    recorded: int
    """``recorded`` in µs since the epoch (UTC); 0 if absent or unreadable."""
    type: str | None
    subtype: str | None
    action: str | None
    outcome: str | None
    request_id: str | None
    refs: tuple[tuple[str, str], ...]
    """``(kind, value)``, kinds in :data:`KINDS`, without repeats."""


def index_of(event: Mapping[str, Any]) -> IndexRow:
    patients, entities, request_id = _scan_entities(_dicts(event.get("entity")))
    refs = dict.fromkeys([*patients, *_agents(event), *entities])
    return IndexRow(
        recorded=recorded_micros(event.get("recorded")),
        type=_code(event.get("type")),
        subtype=_code(_first(event.get("subtype"))),
        action=_text(event.get("action")),
        outcome=_text(event.get("outcome")),
        request_id=request_id,
        refs=tuple(refs),
    )


Ref = tuple[str, str]


def _scan_entities(entities: list[Mapping[str, Any]]) -> tuple[list[Ref], list[Ref], str | None]:
    """Patients, entity references and the request id, in one pass over the entities
    (it runs for every event appended)."""
    patients: list[Ref] = []
    references: list[Ref] = []
    request_id: str | None = None
    found_request = False
    for entity in entities:
        type_ = _code(entity.get("type"))
        what = _dict(entity.get("what"))
        reference = _text(what.get("reference"))
        if reference:
            if (type_ == PATIENT_CODE or _code(entity.get("role")) == PATIENT_CODE) and (
                reference.startswith("Patient/")
            ):
                patients.append(("patient", patient_id(reference)))
            references += [("entity", reference), ("entity", reference.split("/_history/", 1)[0])]
        if type_ == "XrequestId" and not found_request:  # the first one, as before
            request_id, found_request = _text(_dict(what.get("identifier")).get("value")), True
    return patients, references, request_id


def recorded_micros(value: object) -> int:
    if not isinstance(value, str):
        return 0
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def patient_id(reference: str) -> str:
    """``Patient/1``, ``Patient/1/_history/2`` or ``https://…/Patient/1`` → ``1``."""
    head, found, tail = reference.rpartition("Patient/")
    if not found or (head and not head.endswith("/")):
        return reference
    return tail.split("/", 1)[0]


def _agents(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for agent in _dicts(event.get("agent")):
        who = _dict(agent.get("who"))
        for value in (who.get("reference"), _dict(who.get("identifier")).get("value")):
            if text := _text(value):
                yield "agent", text


def _code(value: object) -> str | None:
    """The code of a Coding, or of a CodeableConcept's first coding."""
    coding = _dict(value)
    if "coding" in coding:
        coding = _dict(_first(coding.get("coding")))
    return _text(coding.get("code"))


def _first(value: object) -> object:
    return value[0] if isinstance(value, list) and value else None


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    """An indexable text: NUL, which PostgreSQL text cannot hold and a caller can put in a
    path or a claimed client id, becomes U+FFFD (the record itself keeps it, escaped)."""
    if not isinstance(value, str) or not value:
        return None
    return value[:MAX_VALUE].replace("\x00", "\ufffd")
