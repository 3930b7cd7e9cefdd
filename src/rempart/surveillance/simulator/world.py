"""The hospital as the simulator sees it: what ``rempart synth`` wrote in
``roster/roster.json`` and ``roster/care.ndjson`` (docs/synthetic-hospital.md), and the
patients' names and numbers from ``Patient.ndjson`` when it is there (admissions
search by them)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import orjson

from rempart.synth.patients import IPP_SYSTEM
from rempart.synth.roster import EncounterCare, PatientCare, StaffEntry


@dataclass(frozen=True)
class PatientName:
    family: str
    given: str
    ipp: str | None


@dataclass
class World:
    seed: int
    reference: date
    staff: list[StaffEntry]
    patients: dict[str, PatientCare]
    vip: list[str]
    names: dict[str, PatientName] = field(default_factory=dict)
    care_of: dict[str, list[str]] = field(default_factory=dict)
    """Practitioner id → the patients whose care team they were on, sorted."""

    def __post_init__(self) -> None:
        teams: dict[str, set[str]] = defaultdict(set)
        for care in self.patients.values():
            for encounter in care.encounters:
                for practitioner in encounter.participants:
                    teams[practitioner].add(care.patient)
        self.care_of = {k: sorted(v) for k, v in teams.items()}

    def services(self) -> list[str]:
        """Organization ids of the services patients stayed in, sorted."""
        return sorted({e.service for c in self.patients.values() for e in c.encounters})

    def lab_staff(self) -> list[str]:
        return [s.practitioner for s in self.staff if s.kind == "lab"]

    def reference_moment(self) -> datetime:
        """Midnight UTC at the reference date."""
        return datetime.combine(self.reference, time(), UTC)

    def in_stay(self) -> list[str]:
        """Patients still in a service (an encounter without end), sorted."""
        return sorted(
            p for p, care in self.patients.items() if any(e.end is None for e in care.encounters)
        )

    def last_encounter(self, patient: str) -> EncounterCare | None:
        encounters = self.patients[patient].encounters
        return max(encounters, key=lambda e: e.start) if encounters else None


def load_world(folder: Path) -> World:
    """Reads a generated hospital; raises ``FileNotFoundError`` without a roster."""
    roster = orjson.loads((folder / "roster" / "roster.json").read_bytes())
    patients: dict[str, PatientCare] = {}
    with open(folder / "roster" / "care.ndjson", "rb") as lines:
        for line in lines:
            care = _care(orjson.loads(line))
            patients[care.patient] = care
    world = World(
        seed=int(roster["seed"]),
        reference=date.fromisoformat(roster["reference_date"]),
        staff=[StaffEntry(**entry) for entry in roster["staff"]],
        patients=patients,
        vip=list(roster["vip"]),
    )
    world.names = _names(folder / "Patient.ndjson")
    return world


def _care(raw: dict[str, Any]) -> PatientCare:
    encounters = tuple(
        EncounterCare(e["encounter"], e["service"], e["start"], e["end"], tuple(e["participants"]))
        for e in raw["encounters"]
    )
    return PatientCare(raw["patient"], bool(raw["qualified"]), encounters)


def _names(path: Path) -> dict[str, PatientName]:
    if not path.is_file():
        return {}
    names: dict[str, PatientName] = {}
    with open(path, "rb") as lines:
        for line in lines:
            patient = orjson.loads(line)
            name = (patient.get("name") or [{}])[0]
            ipp = next(
                (
                    i["value"]
                    for i in patient.get("identifier", [])
                    if i.get("system") == IPP_SYSTEM
                ),
                None,
            )
            given = (name.get("given") or [""])[0]
            names[patient["id"]] = PatientName(name.get("family", ""), given, ipp)
    return names
