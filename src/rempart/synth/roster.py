"""The ground truth of a synthetic establishment, for the traffic simulator and the
detectors' scoring: who works where and when, who cares for whom, who is sensitive.

Everything here is plain data serializable to JSON. The roster proper (services,
staff, VIPs, links) is small and written as ``roster/roster.json``; the care of each patient
(their encounters and the practitioners who took part) grows with the number of
patients and is streamed as ``roster/care.ndjson``, one line per patient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServiceEntry:
    organization: str
    """Organization id of the service (``partOf`` the establishment)."""
    key: str
    name: str
    ward: str
    """Location id of the ward; its rooms are ``partOf`` it."""
    rooms: tuple[str, ...]


@dataclass(frozen=True)
class StaffEntry:
    practitioner: str
    role: str
    """PractitionerRole id."""
    kind: str
    """physician, nurse, intern, admission, administrative or lab."""
    service: str | None
    """Organization id of the service, None for establishment-wide roles."""
    start: str
    end: str | None
    """Contract end (ISO date); before the reference date means departed."""
    given: str
    family: str
    birth_date: str
    address: str


@dataclass(frozen=True)
class Link:
    """A patient tied to a staff member: the same person, or the same family and home."""

    patient: str
    practitioner: str


@dataclass(frozen=True)
class EncounterCare:
    encounter: str
    service: str
    start: str
    end: str | None
    """None while the patient is still in the service."""
    participants: tuple[str, ...]
    """Practitioner ids of the care team."""


@dataclass(frozen=True)
class PatientCare:
    patient: str
    qualified: bool
    """The identity is qualified (it carries an INS)."""
    encounters: tuple[EncounterCare, ...]


@dataclass
class Roster:
    seed: int
    reference_date: str
    patients: int
    organization: str
    services: list[ServiceEntry] = field(default_factory=list)
    staff: list[StaffEntry] = field(default_factory=list)
    vip: list[str] = field(default_factory=list)
    """Patient ids of public figures (confidentiality V)."""
    employees: list[Link] = field(default_factory=list)
    """Patients who are staff members (same name, birth date and address)."""
    relatives: list[Link] = field(default_factory=list)
    """Patients sharing a family name and home with a staff member."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def care_json(care: PatientCare) -> dict[str, Any]:
    return asdict(care)
