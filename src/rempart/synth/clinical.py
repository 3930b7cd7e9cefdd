"""A patient's stays: Encounters in a service with their care team, and what was
recorded during them (Conditions, Observations, DiagnosticReports, MedicationRequests,
Procedures, DocumentReferences), plus the patient's AllergyIntolerances.

Stays fall in the three years before the reference date; one patient in twenty is
still in a service on that date (an ``in-progress`` Encounter without an end).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from rempart.synth.catalog import ALLERGIES, ATC, ICD10, LOINC, NOTE_TYPES, SNOMED, ServiceKind
from rempart.synth.establishment import Establishment, StaffMember
from rempart.synth.measurements import Measurer
from rempart.synth.patients import Identity
from rempart.synth.roster import EncounterCare
from rempart.synth.shapes import coding, concept, day, instant, ref
from rempart.synth.staffing import semester_of

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
WINDOW_DAYS = 3 * 365
CURRENT_EVERY = 20


@dataclass
class Stay:
    """One encounter being generated."""

    id: str
    kind: ServiceKind
    service: str
    start: datetime
    end: datetime | None
    physician: StaffMember
    nurse: StaffMember
    intern: StaffMember | None
    resources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def team(self) -> list[StaffMember]:
        return [m for m in (self.physician, self.nurse, self.intern) if m is not None]

    def care(self) -> EncounterCare:
        end = instant(self.end) if self.end else None
        members = tuple(m.entry.practitioner for m in self.team)
        return EncounterCare(self.id, self.service, instant(self.start), end, members)


def records(
    place: Establishment, rng: random.Random, who: Identity, n: int
) -> tuple[list[dict[str, Any]], list[EncounterCare]]:
    """Every clinical resource of patient ``n`` and the care they received."""
    resources = list(_allergies(place, rng, who))
    cares = []
    count = rng.randint(1, 4)
    for k in range(count):
        current = k == count - 1 and n % CURRENT_EVERY == 0
        stay = _stay(place, rng, who, f"{place.prefix}-enc-{n}-{k}", current)
        _fill(place, rng, who, stay)
        resources.extend(stay.resources)
        cares.append(stay.care())
    return resources, cares


def _stay(place: Establishment, rng: random.Random, who: Identity, id_: str, current: bool) -> Stay:
    kind = who.service if rng.random() < 0.75 else rng.choice(place.kinds)
    service = next(s.organization for s in place.services if s.key == kind.key)
    reference = datetime.combine(place.reference, time(0, 0))
    days = rng.randint(0, 4) if current else rng.randint(6, WINDOW_DAYS)
    start = reference - timedelta(days=days, minutes=rng.randint(0, 23 * 60))
    end = None if current else start + _length(rng, kind)
    intern = _intern(place, rng, service, start)
    physician = rng.choice(place.team(service, "physician"))
    return Stay(
        id_, kind, service, start, end, physician, rng.choice(place.team(service, "nurse")), intern
    )


def _length(rng: random.Random, kind: ServiceKind) -> timedelta:
    if kind.encounter_class == "EMER":
        return timedelta(hours=rng.randint(2, 12))
    if kind.encounter_class == "AMB":
        return timedelta(hours=rng.randint(1, 6))
    return timedelta(days=rng.randint(1, 12), hours=rng.randint(0, 8))


def _intern(
    place: Establishment, rng: random.Random, service: str, start: datetime
) -> StaffMember | None:
    semester = semester_of(place.semesters, start.date())
    interns = place.team(service, f"intern-{semester}") if semester is not None else []
    return rng.choice(interns) if interns and rng.random() < 0.7 else None


def _fill(place: Establishment, rng: random.Random, who: Identity, stay: Stay) -> None:
    stay.resources.append(_encounter(place, rng, who, stay))
    diagnosis = rng.choice(stay.kind.diagnoses)
    stay.resources.append(_condition(who, stay, diagnosis))
    measurer = Measurer(rng, f"{stay.id}-obs", who.id, stay.id)
    moment = stay.start + timedelta(minutes=rng.randint(10, 90))
    stay.resources.extend(measurer.vital_signs(moment, stay.nurse.entry.practitioner))
    if stay.kind.encounter_class != "AMB" or rng.random() < 0.4:
        lab = rng.choice(place.team(place.organization, "lab"))
        stay.resources.extend(measurer.labs(moment + timedelta(hours=2), lab.entry.practitioner))
    for number, drug in enumerate(rng.sample(stay.kind.drugs, rng.randint(0, 2))):
        stay.resources.append(_medication(who, stay, drug, number))
    if rng.random() < 0.5:
        stay.resources.append(_procedure(who, stay, rng.choice(stay.kind.procedures)))
    stay.resources.append(_note(who, stay, diagnosis))


def _encounter(
    place: Establishment, rng: random.Random, who: Identity, stay: Stay
) -> dict[str, Any]:
    kind = stay.kind
    period = {"start": instant(stay.start), **({"end": instant(stay.end)} if stay.end else {})}
    room = next(s.rooms for s in place.services if s.key == kind.key)[rng.randrange(4)]
    roles = (("ATND", "attender"), ("PPRF", "primary performer"), ("SPRF", "secondary performer"))
    return {
        "resourceType": "Encounter",
        "id": stay.id,
        "status": "finished" if stay.end else "in-progress",
        "class": coding(ACT_CODE, kind.encounter_class),
        "subject": ref("Patient", who.id),
        "participant": [
            {
                "type": [concept(PARTICIPATION, code, text)],
                "period": period,
                "individual": ref("Practitioner", member.entry.practitioner),
            }
            for (code, text), member in zip(roles, stay.team, strict=False)
        ],
        "period": period,
        "location": [{"location": ref("Location", room)}],
        "serviceProvider": ref("Organization", stay.service),
    }


def _condition(who: Identity, stay: Stay, diagnosis: tuple[str, str]) -> dict[str, Any]:
    resolved = stay.end is not None and stay.kind.key in ("urgences", "mater", "pedia")
    return {
        "resourceType": "Condition",
        "id": f"{stay.id}-cond",
        "clinicalStatus": concept(CLINICAL, "resolved" if resolved else "active"),
        "verificationStatus": concept(VERIFICATION, "confirmed"),
        "category": [
            concept(
                "http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis"
            )
        ],
        "code": concept(ICD10, *diagnosis),
        "subject": ref("Patient", who.id),
        "encounter": ref("Encounter", stay.id),
        "onsetDateTime": instant(stay.start),
        "recordedDate": instant(stay.start),
        "recorder": ref("Practitioner", stay.physician.entry.practitioner),
    }


def _medication(who: Identity, stay: Stay, drug: tuple[str, str], number: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"{stay.id}-med-{number}",
        "status": "completed" if stay.end else "active",
        "intent": "order",
        "medicationCodeableConcept": concept(ATC, *drug),
        "subject": ref("Patient", who.id),
        "encounter": ref("Encounter", stay.id),
        "authoredOn": instant(stay.start + timedelta(hours=1)),
        "requester": ref("Practitioner", (stay.intern or stay.physician).entry.practitioner),
    }


def _procedure(who: Identity, stay: Stay, procedure: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"{stay.id}-proc",
        "status": "completed",
        "code": concept(SNOMED, *procedure),
        "subject": ref("Patient", who.id),
        "encounter": ref("Encounter", stay.id),
        "performedDateTime": instant(stay.start + timedelta(hours=3)),
        "performer": [{"actor": ref("Practitioner", stay.physician.entry.practitioner)}],
    }


def _note(who: Identity, stay: Stay, diagnosis: tuple[str, str]) -> dict[str, Any]:
    code, display = NOTE_TYPES[1] if stay.end else NOTE_TYPES[0]
    author = stay.physician.entry
    text = (
        f"{display} - {stay.kind.name}\nPatient : {who.person.given} {who.person.family}\n"
        f"Diagnostic : {diagnosis[1]} ({diagnosis[0]})\nDr {author.given} {author.family}\n"
    )
    return {
        "resourceType": "DocumentReference",
        "id": f"{stay.id}-doc",
        "status": "current",
        "type": concept(LOINC, code, display),
        "subject": ref("Patient", who.id),
        "date": instant(stay.end or stay.start),
        "author": [ref("Practitioner", author.practitioner)],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "fr",
                    "data": base64.b64encode(text.encode()).decode(),
                    "title": display,
                }
            }
        ],
        "context": {"encounter": [ref("Encounter", stay.id)]},
    }


def _allergies(place: Establishment, rng: random.Random, who: Identity) -> Iterator[dict[str, Any]]:
    if rng.random() >= 0.3:
        return
    for number, (code, display, category) in enumerate(rng.sample(ALLERGIES, rng.randint(1, 2))):
        yield {
            "resourceType": "AllergyIntolerance",
            "id": f"{who.id}-alg-{number}",
            "clinicalStatus": concept(ALLERGY_CLINICAL, "active"),
            "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed"),
            "type": "allergy",
            "category": [category],
            "code": concept(SNOMED, code, display),
            "patient": ref("Patient", who.id),
            "recordedDate": day(place.reference - timedelta(days=rng.randint(30, 3000))),
        }
