"""The simulated people and systems: who they are, what role their account has, which
patients are in their care, and when they work.

Clinicians come from the roster's staff (physicians, nurses, interns of the current
semester) and care for the patients whose encounters they took part in. Interns whose
contract ended before the reference date have left: they get an account with that end
date (so it cannot log in) and are kept aside for attack scenarios, never used by the
normal ones.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from rempart.surveillance.simulator.world import World
from rempart.synth.roster import StaffEntry

CLINICAL = ("physician", "nurse", "intern")
LAB_CLIENT = "sim-lab"
APP_CLIENT = "rempart-sim-app"
APP_REDIRECT = "http://127.0.0.1/simulator/callback"
DAY_START = time(6)
"""06:00 UTC, 07:00 in Paris in winter: the simulated clock runs in UTC, like the
generator's dates."""
SHIFT = timedelta(hours=12)


@dataclass(frozen=True)
class Actor:
    name: str
    """The username, or the client id of a backend system."""
    role: str
    """physician, nurse, intern, admission, lab or patient."""
    practitioner: str | None = None
    patient: str | None = None
    """The patient's own account (patient app): whose record it reads."""
    end_date: str | None = None
    care: tuple[str, ...] = ()
    """Patients in their care (sorted)."""
    night: bool = False
    """Works the night shift (18:00 to 06:00 UTC) rather than the day one."""
    always: bool = False
    """On duty at any hour (the lab system, the patient app)."""

    @property
    def backend(self) -> bool:
        return self.role == "lab"

    @property
    def fhir_user(self) -> str | None:
        if self.patient is not None:
            return f"Patient/{self.patient}"
        return f"Practitioner/{self.practitioner}" if self.practitioner else None

    def shift_start(self, moment: datetime) -> datetime | None:
        """Start of the shift ``moment`` falls in, None when off duty."""
        day = datetime.combine(moment.date(), DAY_START, moment.tzinfo)
        if self.always:
            return day if moment >= day else day - timedelta(days=1)
        start = day + SHIFT if self.night else day
        if self.night and moment < day:
            start -= timedelta(days=1)
        return start if start <= moment < start + SHIFT else None


@dataclass
class Cast:
    """Everyone of one simulation."""

    clinicians: list[Actor] = field(default_factory=list)
    admission: list[Actor] = field(default_factory=list)
    lab: Actor | None = None
    patient_app: Actor | None = None
    departed: list[Actor] = field(default_factory=list)
    """Interns gone before the reference date: accounts that must not log in."""

    def active(self) -> list[Actor]:
        """Everyone who logs in or gets tokens in normal scenarios."""
        extra = [a for a in (self.lab, self.patient_app) if a is not None]
        return [*self.clinicians, *self.admission, *extra]

    def accounts(self) -> list[Actor]:
        """Every user account to register (the departed included)."""
        return [a for a in (*self.active(), *self.departed) if not a.backend]


def cast(world: World, clinicians: int | None = None) -> Cast:
    """The actors of ``world``; at most ``clinicians`` of them clinicians (the first
    ones in roster order that have patients in their care), all when None."""
    names = _Usernames()
    result = Cast()
    for index, staff in enumerate(world.staff):
        if staff.kind in CLINICAL:
            _clinician(world, result, names, staff, night=index % 3 == 2)
        elif staff.kind == "admission":
            result.admission.append(Actor(names.of(staff), "admission", staff.practitioner))
    if clinicians is not None:
        result.clinicians = result.clinicians[:clinicians]
    result.lab = Actor(LAB_CLIENT, "lab", always=True)
    ordinary = (p for p, c in sorted(world.patients.items()) if c.qualified and p not in world.vip)
    patient = next(ordinary, None)
    if patient is not None:
        result.patient_app = Actor(f"patient.{patient}", "patient", patient=patient, always=True)
    return result


def _clinician(
    world: World, result: Cast, names: _Usernames, staff: StaffEntry, night: bool
) -> None:
    care = tuple(world.care_of.get(staff.practitioner, ()))
    departed = staff.end is not None and date.fromisoformat(staff.end) < world.reference
    actor = Actor(names.of(staff), staff.kind, staff.practitioner, None, staff.end, care, night)
    if departed:
        result.departed.append(actor)
    elif care:
        result.clinicians.append(actor)


class _Usernames:
    """``given.family`` in ASCII lower case, made unique by a number."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def of(self, staff: StaffEntry) -> str:
        stem = f"{_ascii(staff.given)}.{_ascii(staff.family)}"
        name, n = stem, 1
        while name in self.taken:
            n += 1
            name = f"{stem}{n}"
        self.taken.add(name)
        return name


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum() or c == "-") or "x"
