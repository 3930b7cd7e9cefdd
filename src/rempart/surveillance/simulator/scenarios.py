"""What the simulated people do: each scenario turns a moment of simulated time into
an :class:`Action` (one HTTP request by one actor), or nothing when none of its actors
is on duty. The normal behaviours are scenarios like any other; an attack is one more
class (``attacks.py``) with its own label.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from rempart.surveillance.simulator.actors import Actor, Cast
from rempart.surveillance.simulator.world import World
from rempart.synth.catalog import ATC, ICD10, SERVICES
from rempart.synth.measurements import Measurer
from rempart.synth.patients import IPP_SYSTEM
from rempart.synth.shapes import concept, instant, ref

NORMAL = "normal"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"


@dataclass(frozen=True)
class Action:
    """One request of the plan."""

    moment: datetime
    """Simulated time."""
    actor: Actor
    scenario: str
    label: str
    """``normal`` or the attack's name: what a detector should (not) flag."""
    method: str
    path: str
    """From the origin, with the query: ``/fhir/Patient/x``."""
    patient: str | None = None
    """The patient concerned, when one is."""
    body: dict[str, Any] | None = None


class Scenario(Protocol):
    """A kind of behaviour: ``action`` is called with the plan's own random source, so
    that the same seed gives the same plan."""

    name: str
    label: str
    weight: float
    """Relative frequency in the mix."""

    def action(self, moment: datetime, rng: random.Random) -> Action | None: ...


ScenarioType = Callable[[World, Cast], Scenario]


def in_care(
    actors: Sequence[Actor], moment: datetime, rng: random.Random
) -> tuple[Actor, str] | None:
    """One of ``actors`` on duty at ``moment`` and a patient in their care, if any is."""
    present = on_duty(actors, moment)
    if not present:
        return None
    actor = rng.choice(present)
    return actor, rng.choice(actor.care)


def on_duty(actors: Sequence[Actor], moment: datetime) -> list[Actor]:
    return [a for a in actors if a.shift_start(moment) is not None]


def read_record(patient: str, rng: random.Random) -> tuple[str, str]:
    """A read of the patient, or a search of one part of their record."""
    kind = rng.choice(
        ("Patient", "Observation", "Condition", "MedicationRequest", "DocumentReference")
    )
    if kind == "Patient":
        return "GET", f"/fhir/Patient/{patient}"
    return "GET", f"/fhir/{kind}?patient={patient}&_count=20"


class ClinicalReading:
    """Physicians, nurses and interns reading the records of the patients in their care."""

    name, label, weight = "clinical-reading", NORMAL, 10.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.actors = cast.clinicians

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        chosen = in_care(self.actors, moment, rng)
        if chosen is None:
            return None
        actor, patient = chosen
        method, path = read_record(patient, rng)
        return Action(moment, actor, self.name, self.label, method, path, patient)


class Prescribing:
    """Physicians recording a diagnosis or prescribing, for a patient in their care."""

    name, label, weight = "prescribing", NORMAL, 2.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.world = world
        self.actors = [a for a in cast.clinicians if a.role == "physician"]

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        chosen = in_care(self.actors, moment, rng)
        if chosen is None:
            return None
        actor, patient = chosen
        kind = rng.choice(SERVICES)
        encounter = self.world.last_encounter(patient)
        common = {
            "subject": ref("Patient", patient),
            **({"encounter": ref("Encounter", encounter.encounter)} if encounter else {}),
        }
        if rng.random() < 0.5:
            body = {
                "resourceType": "Condition",
                "clinicalStatus": concept(CLINICAL_STATUS, "active"),
                "code": concept(ICD10, *rng.choice(kind.diagnoses)),
                **common,
                "recordedDate": instant(moment),
                "recorder": ref("Practitioner", str(actor.practitioner)),
            }
        else:
            body = {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": concept(ATC, *rng.choice(kind.drugs)),
                **common,
                "authoredOn": instant(moment),
                "requester": ref("Practitioner", str(actor.practitioner)),
            }
        path = f"/fhir/{body['resourceType']}"
        return Action(moment, actor, self.name, self.label, "POST", path, patient, body)


class VitalSigns:
    """Nurses recording a vital sign for a patient in their care."""

    name, label, weight = "vital-signs", NORMAL, 3.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.world = world
        self.actors = [a for a in cast.clinicians if a.role == "nurse"]

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        chosen = in_care(self.actors, moment, rng)
        if chosen is None:
            return None
        actor, patient = chosen
        encounter = self.world.last_encounter(patient)
        measurer = Measurer(rng, "sim", patient, encounter.encounter if encounter else "")
        body = rng.choice(list(measurer.vital_signs(moment, str(actor.practitioner))))
        del body["id"]
        if encounter is None:
            del body["encounter"]
        return Action(
            moment, actor, self.name, self.label, "POST", "/fhir/Observation", patient, body
        )


class Admissions:
    """Admissions staff finding patients by name or number, and admitting new ones
    (a transaction: the Patient and their Encounter)."""

    name, label, weight = "admissions", NORMAL, 2.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.world = world
        self.actors = cast.admission
        self.known = sorted(world.names)

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        present = on_duty(self.actors, moment)
        if not present:
            return None
        actor = rng.choice(present)
        if not self.known or rng.random() < 0.3:
            body = self._admission(moment, rng)
            return Action(moment, actor, self.name, self.label, "POST", "/fhir", None, body)
        patient = rng.choice(self.known)
        name = self.world.names[patient]
        if name.ipp and rng.random() < 0.5:
            path = f"/fhir/Patient?identifier={quote(IPP_SYSTEM, safe='')}%7C{name.ipp}"
        else:
            path = f"/fhir/Patient?family={quote(name.family)}"
        return Action(moment, actor, self.name, self.label, "GET", path, patient)

    def _admission(self, moment: datetime, rng: random.Random) -> dict[str, Any]:
        names = [self.world.names[p] for p in self.known] or None
        family = rng.choice(names).family if names else "Martin"
        given = rng.choice(names).given if names else "Camille"
        patient_url = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": IPP_SYSTEM, "value": f"S{rng.randrange(10**8):08d}"}],
            "name": [{"family": family, "given": [given]}],
            "birthDate": _birth_date(rng),
        }
        encounter = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": ACT_CODE, "code": "IMP"},
            "subject": {"reference": patient_url},
            "period": {"start": instant(moment)},
        }
        if self.world.services():
            encounter["serviceProvider"] = ref("Organization", rng.choice(self.world.services()))
        return transaction([(patient_url, patient), (None, encounter)], rng)


class LabResults:
    """The laboratory system (a backend client) posting a panel: its Observations and
    the DiagnosticReport grouping them, in one transaction."""

    name, label, weight = "lab-results", NORMAL, 2.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.world = world
        self.actor = cast.lab
        self.patients = world.in_stay() or sorted(world.patients)
        self.performers = world.lab_staff() or ["unknown"]

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        if self.actor is None or not self.patients:
            return None
        patient = rng.choice(self.patients)
        encounter = self.world.last_encounter(patient)
        measurer = Measurer(rng, "lab", patient, encounter.encounter if encounter else "")
        resources = list(measurer.labs(moment, rng.choice(self.performers)))
        urls = {
            f"Observation/{r['id']}": f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
            for r in resources[:-1]
        }
        report = resources[-1]
        report["result"] = [{"reference": urls[r["reference"]]} for r in report["result"]]
        entries = [(urls[f"Observation/{r['id']}"], r) for r in resources[:-1]] + [(None, report)]
        for _, resource in entries:
            resource.pop("id", None)
            if encounter is None:
                resource.pop("encounter", None)
        body = transaction(entries, rng)
        return Action(moment, self.actor, self.name, self.label, "POST", "/fhir", patient, body)


class PatientApp:
    """A patient reading their own record through an app."""

    name, label, weight = "patient-app", NORMAL, 1.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.actor = cast.patient_app

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        if self.actor is None or self.actor.patient is None:
            return None
        patient = self.actor.patient
        kind = rng.choice(
            ("Patient", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance")
        )
        path = (
            f"/fhir/Patient/{patient}" if kind == "Patient" else f"/fhir/{kind}?patient={patient}"
        )
        return Action(moment, self.actor, self.name, self.label, "GET", path, patient)


def _birth_date(rng: random.Random) -> str:
    return f"{rng.randint(1935, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def transaction(
    entries: Sequence[tuple[str | None, dict[str, Any]]], rng: random.Random
) -> dict[str, Any]:
    """A transaction Bundle creating ``entries`` (each with its ``urn:uuid`` full URL)."""
    bundle_entries = []
    for full_url, resource in entries:
        url = full_url or f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        request = {"method": "POST", "url": resource["resourceType"]}
        bundle_entries.append({"fullUrl": url, "resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries}


NORMAL_SCENARIOS: tuple[ScenarioType, ...] = (
    ClinicalReading,
    Prescribing,
    VitalSigns,
    Admissions,
    LabResults,
    PatientApp,
)
