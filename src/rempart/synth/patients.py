"""Patients: identity, INS on qualified identities only, and the sensitive ones.

FR Core puts the INS (a NIR, OID 1.2.250.1.213.1.4.8) only on a *qualified* identity
(checked against the national INSi service and a proof of identity). The identity's
status travels in the FR Core identity-reliability extension (``VALI`` qualified,
``PROV`` provisional). Every patient has the establishment's own patient number (IPP).

A few patients are staff members (the same identity as their Practitioner, tagged
``employee``), a few are public figures (``meta.security`` V, very restricted), and a
few share a family name and a home with a staff member, for the snooping scenarios.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any

from rempart.synth.catalog import ServiceKind
from rempart.synth.establishment import Establishment, StaffMember
from rempart.synth.identifiers import INS_SYSTEM, ins
from rempart.synth.names import BIRTH_DEPARTMENTS
from rempart.synth.people import Person, person, relative
from rempart.synth.shapes import SYNTH, SYNTH_TAG, coding, concept

QUALIFIED_SHARE = 0.7
EMPLOYEE_EVERY, VIP_EVERY, RELATIVE_EVERY = 40, 97, 25
RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
RELIABILITY_CODES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445"
IDENTIFIER_TYPE = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
IPP_SYSTEM = f"{SYNTH}/sid/ipp"
AGES = {"pedia": (0, 15), "mater": (18, 42), "geria": (75, 98)}


@dataclass(frozen=True)
class Identity:
    id: str
    person: Person
    service: ServiceKind
    """The service the patient mostly comes to."""
    qualified: bool
    vip: bool
    employee_of: StaffMember | None
    relative_of: StaffMember | None


def identity(place: Establishment, rng: random.Random, n: int) -> Identity:
    """Patient ``n``: the special cases fall on fixed indexes so every size has some."""
    kind = rng.choice(place.kinds)
    staff = place.staff[(n // EMPLOYEE_EVERY) % len(place.staff)]
    employee = staff if n % EMPLOYEE_EVERY == 3 else None
    kin = place.staff[(n * 7) % len(place.staff)] if n % RELATIVE_EVERY == 5 else None
    born_from, born_to = _birth_range(place.reference, kind)
    if employee is not None:
        who = employee.person
    elif kin is not None:
        who = relative(rng, kin.person, born_from, born_to)
    else:
        who = person(rng, born_from, born_to, "female" if kind.key == "mater" else "")
    qualified = rng.random() < QUALIFIED_SHARE
    return Identity(
        f"{place.prefix}-pat-{n}", who, kind, qualified, n % VIP_EVERY == 11, employee, kin
    )


def patient_resource(
    place: Establishment, rng: random.Random, who: Identity, n: int
) -> dict[str, Any]:
    identifiers = [{"system": IPP_SYSTEM, "value": f"{n + 1:09d}"}]
    if who.qualified:
        identifiers.append(_ins(rng, who.person))
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": who.id,
        "extension": [_reliability(who.qualified)],
        "identifier": identifiers,
        "active": True,
        **who.person.fhir_identity(),
        "managingOrganization": {"reference": f"Organization/{place.organization}"},
    }
    meta = _meta(who)
    if meta:
        resource["meta"] = meta
    return resource


def _meta(who: Identity) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if who.vip:
        meta["security"] = [coding(CONFIDENTIALITY, "V", "very restricted")]
    if who.employee_of is not None:
        meta["tag"] = [coding(SYNTH_TAG, "employee", "Patient who works in the establishment")]
    return meta


def _ins(rng: random.Random, who: Person) -> dict[str, Any]:
    place = f"{rng.choice(BIRTH_DEPARTMENTS)}{rng.randint(1, 400):03d}"
    sex = 2 if who.gender == "female" else 1
    value = ins(sex, who.birth_date.year, who.birth_date.month, place, rng.randint(1, 999))
    return {
        "use": "official",
        "type": concept(IDENTIFIER_TYPE, "INS-NIR", "NIR définitif"),
        "system": INS_SYSTEM,
        "value": value,
    }


def _reliability(qualified: bool) -> dict[str, Any]:
    code = "VALI" if qualified else "PROV"
    display = "Identité validée" if qualified else "Identité provisoire"
    status = {"url": "identityStatus", "valueCoding": coding(RELIABILITY_CODES, code, display)}
    return {"url": RELIABILITY, "extension": [status]}


def _birth_range(reference: date, kind: ServiceKind) -> tuple[date, date]:
    youngest, oldest = AGES.get(kind.key, (18, 90))
    return (
        reference.replace(year=reference.year - oldest - 1, day=1),
        reference.replace(year=reference.year - youngest, day=1),
    )
