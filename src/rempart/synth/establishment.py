"""The establishment: its Organization, services, wards and rooms, and its staff.

The establishment is small next to its patients (a few hundred resources at most), so
it is built once, kept in memory, and consulted while each patient is generated.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from rempart.synth.catalog import SERVICES, ServiceKind
from rempart.synth.identifiers import FINESS_SYSTEM, RPPS_SYSTEM, finess, rpps
from rempart.synth.people import Person, person
from rempart.synth.roster import ServiceEntry, StaffEntry
from rempart.synth.shapes import STAFF_ROLE, concept, day, ref
from rempart.synth.staffing import Sizing, semester_end, semester_starts, sizing

ROOMS_PER_WARD = 4
HOSPITAL_NAME = "Centre hospitalier synthétique de Lyon-Est"
ROLE_NAMES = {
    "physician": "Médecin",
    "nurse": "Infirmier·e",
    "intern": "Interne",
    "admission": "Agent d'admission",
    "administrative": "Personnel administratif",
    "lab": "Technicien·ne de laboratoire",
}


@dataclass(frozen=True)
class StaffMember:
    entry: StaffEntry
    person: Person


@dataclass
class Establishment:
    prefix: str
    reference: date
    organization: str
    finess: str
    kinds: list[ServiceKind]
    services: list[ServiceEntry] = field(default_factory=list)
    staff: list[StaffMember] = field(default_factory=list)
    semesters: list[date] = field(default_factory=list)
    teams: dict[tuple[str, str], list[StaffMember]] = field(default_factory=dict)
    """(service Organization id, kind) → staff; interns under ``intern-<semester>``."""

    def team(self, service: str, kind: str) -> list[StaffMember]:
        return self.teams.get((service, kind), [])

    def resources(self) -> Iterator[dict[str, Any]]:
        yield self._hospital()
        for kind, service in zip(self.kinds, self.services, strict=True):
            yield from self._service(kind, service)
        for member in self.staff:
            yield from staff_resources(self, member)

    def _hospital(self) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": self.organization,
            "identifier": [{"system": FINESS_SYSTEM, "value": self.finess}],
            "active": True,
            "type": [organization_type("prov", "Healthcare Provider")],
            "name": HOSPITAL_NAME,
            "address": [{"line": ["59 boulevard Pinel"], "city": "Bron", "postalCode": "69500"}],
        }

    def _service(self, kind: ServiceKind, service: ServiceEntry) -> Iterator[dict[str, Any]]:
        yield {
            "resourceType": "Organization",
            "id": service.organization,
            "active": True,
            "type": [organization_type("dept", "Hospital Department")],
            "name": f"Service de {kind.name}",
            "partOf": ref("Organization", self.organization),
        }
        yield location(service.ward, f"Unité {kind.name}", "wa", service.organization)
        for number, room in enumerate(service.rooms, start=1):
            yield location(
                room, f"{kind.name} chambre {number}", "ro", service.organization, service.ward
            )


def build(prefix: str, seed: int, patients: int, reference: date) -> Establishment:
    """The establishment for ``patients`` patients; the same arguments give the same one."""
    rng = random.Random(f"{seed}/establishment")  # noqa: S311 - synthetic data, not security
    size = sizing(patients, len(SERVICES))
    place = Establishment(
        prefix,
        reference,
        f"{prefix}-org",
        finess("69", rng.randint(1, 99999)),
        list(SERVICES[: size.services]),
    )
    place.semesters = semester_starts(reference)
    for kind in place.kinds:
        service = f"{prefix}-svc-{kind.key}"
        rooms = tuple(f"{prefix}-loc-{kind.key}-{n}" for n in range(1, ROOMS_PER_WARD + 1))
        place.services.append(
            ServiceEntry(service, kind.key, kind.name, f"{prefix}-loc-{kind.key}", rooms)
        )
    _hire(place, rng, size)
    return place


def _hire(place: Establishment, rng: random.Random, size: Sizing) -> None:
    for service in place.services:
        for _ in range(size.physicians):
            _add(place, rng, "physician", service.organization, _tenure(rng, place.reference))
        for _ in range(size.nurses):
            _add(place, rng, "nurse", service.organization, _tenure(rng, place.reference))
        for index, start in enumerate(place.semesters):
            for _ in range(size.interns):
                period = (start, semester_end(place.semesters, index))
                _add(place, rng, "intern", service.organization, period, f"intern-{index}")
    for kind, count in (
        ("admission", size.admission),
        ("administrative", size.administrative),
        ("lab", size.lab),
    ):
        for _ in range(count):
            _add(place, rng, kind, None, _tenure(rng, place.reference))


def _tenure(rng: random.Random, reference: date) -> tuple[date, None]:
    return reference - timedelta(days=rng.randint(200, 25 * 365)), None


def _add(
    place: Establishment,
    rng: random.Random,
    kind: str,
    service: str | None,
    period: tuple[date, date | None],
    team: str = "",
) -> None:
    number = len(place.staff)
    youngest = 24 if kind == "intern" else 22
    oldest = 31 if kind == "intern" else 64
    who = person(
        rng, _years_before(place.reference, oldest), _years_before(place.reference, youngest)
    )
    start, end = period
    entry = StaffEntry(
        f"{place.prefix}-pra-{number}", f"{place.prefix}-rol-{number}", kind, service,
        day(start), day(end) if end else None, who.given, who.family,
        day(who.birth_date), str(who.home),
    )  # fmt: skip
    member = StaffMember(entry, who)
    place.staff.append(member)
    place.teams.setdefault((service or place.organization, team or kind), []).append(member)


def staff_resources(place: Establishment, member: StaffMember) -> Iterator[dict[str, Any]]:
    entry = member.entry
    rpps_number = rpps(int.from_bytes(entry.practitioner.encode()[-6:], "big") % 10**9)
    yield {
        "resourceType": "Practitioner",
        "id": entry.practitioner,
        "identifier": [{"system": RPPS_SYSTEM, "value": rpps_number}],
        "active": entry.end is None or entry.end >= day(place.reference),
        **member.person.fhir_identity(),
    }
    period = {"start": entry.start, **({"end": entry.end} if entry.end else {})}
    yield {
        "resourceType": "PractitionerRole",
        "id": entry.role,
        "active": entry.end is None or entry.end >= day(place.reference),
        "period": period,
        "practitioner": ref("Practitioner", entry.practitioner),
        "organization": ref("Organization", entry.service or place.organization),
        "code": [concept(STAFF_ROLE, entry.kind, ROLE_NAMES[entry.kind])],
    }


def location(
    id_: str, name: str, physical: str, organization: str, part_of: str | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": id_,
        "status": "active",
        "name": name,
        "mode": "instance",
        "physicalType": concept(
            "http://terminology.hl7.org/CodeSystem/location-physical-type", physical
        ),
        "managingOrganization": ref("Organization", organization),
    }
    if part_of:
        resource["partOf"] = ref("Location", part_of)
    return resource


def organization_type(code: str, display: str) -> dict[str, Any]:
    return concept("http://terminology.hl7.org/CodeSystem/organization-type", code, display)


def _years_before(reference: date, years: int) -> date:
    return reference.replace(year=reference.year - years, day=min(reference.day, 28))
