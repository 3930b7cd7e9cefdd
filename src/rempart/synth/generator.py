"""The generator: an establishment, then its patients one at a time.

Deterministic: everything is drawn from ``random.Random`` instances seeded from the
seed (one for the establishment, one per patient, so patient ``n`` does not depend on
how many came before), and dates count back from a given reference date, never from
the clock. Streaming: patients are produced one by one, each with its records, so
memory does not grow with the number of patients (only the small roster lists do).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from rempart.synth.clinical import records
from rempart.synth.establishment import build
from rempart.synth.patients import Identity, identity, patient_resource
from rempart.synth.roster import Link, PatientCare, Roster

PRESETS = {"clinic": 100, "small": 1_000, "hospital": 10_000, "large": 100_000}
REFERENCE_DATE = date(2026, 1, 15)
"""The default "today" of the generated world (a fixed date, so output is reproducible)."""


@dataclass(frozen=True)
class PatientRecord:
    resources: list[dict[str, Any]]
    """The Patient first, then their clinical resources."""
    care: PatientCare


class Generator:
    """A synthetic French establishment of ``patients`` patients."""

    def __init__(self, patients: int, seed: int = 1, reference: date = REFERENCE_DATE) -> None:
        self.patients, self.seed = patients, seed
        self.place = build(f"h{seed}", seed, patients, reference)
        self.roster = Roster(seed, reference.isoformat(), patients, self.place.organization)
        self.roster.services = list(self.place.services)
        self.roster.staff = [member.entry for member in self.place.staff]

    def establishment(self) -> Iterator[dict[str, Any]]:
        """Organization, services, wards, rooms, Practitioners and PractitionerRoles."""
        return self.place.resources()

    def records(self) -> Iterator[PatientRecord]:
        """Every patient in order; iterate once (each patient adds to the roster)."""
        for n in range(self.patients):
            yield self.patient(n)

    def resources(self) -> Iterator[dict[str, Any]]:
        """Everything, establishment first."""
        yield from self.establishment()
        for record in self.records():
            yield from record.resources

    def patient(self, n: int) -> PatientRecord:
        rng = random.Random(f"{self.seed}/patient/{n}")  # noqa: S311 - synthetic data
        who = identity(self.place, rng, n)
        patient = patient_resource(self.place, rng, who, n)
        clinical, cares = records(self.place, rng, who, n)
        self._note(who)
        return PatientRecord([patient, *clinical], PatientCare(who.id, who.qualified, tuple(cares)))

    def _note(self, who: Identity) -> None:
        """Records in the roster what makes this patient sensitive."""
        if who.vip:
            self.roster.vip.append(who.id)
        if who.employee_of is not None:
            self.roster.employees.append(Link(who.id, who.employee_of.entry.practitioner))
        if who.relative_of is not None:
            self.roster.relatives.append(Link(who.id, who.relative_of.entry.practitioner))
