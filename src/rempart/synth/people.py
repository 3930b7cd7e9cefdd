"""Synthetic people: a name, a sex, a birth date, a home and a phone number.

Staff members and patients are both drawn here, so that an employee's patient record
can carry exactly the identity of their Practitioner record, and a relative can share
a family name and a home with a staff member.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from rempart.synth.names import FAMILY_NAMES, FEMALE, MALE, STREET_KINDS, STREET_NAMES, TOWNS


@dataclass(frozen=True)
class Home:
    line: str
    city: str
    postal_code: str

    def fhir(self) -> dict[str, Any]:
        return {
            "use": "home",
            "line": [self.line],
            "city": self.city,
            "postalCode": self.postal_code,
            "country": "FR",
        }

    def __str__(self) -> str:
        return f"{self.line}, {self.postal_code} {self.city}"


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    gender: str
    """FHIR administrative gender: ``female`` or ``male``."""
    birth_date: date
    home: Home
    phone: str

    def fhir_identity(self) -> dict[str, Any]:
        """The elements Patient and Practitioner share."""
        return {
            "name": [{"use": "official", "family": self.family, "given": [self.given]}],
            "telecom": [{"system": "phone", "value": self.phone, "use": "mobile"}],
            "gender": self.gender,
            "birthDate": self.birth_date.isoformat(),
            "address": [self.home.fhir()],
        }


def person(rng: random.Random, born_from: date, born_to: date, gender: str = "") -> Person:
    """A person born in [born_from, born_to]; of the given gender if one is given."""
    gender = gender or rng.choice(("female", "male"))
    given = rng.choice(FEMALE if gender == "female" else MALE)
    days = (born_to - born_from).days
    birth = born_from + timedelta(days=rng.randint(0, max(days, 0)))
    return Person(given, rng.choice(FAMILY_NAMES), gender, birth, home(rng), phone(rng))


def relative(rng: random.Random, of: Person, born_from: date, born_to: date) -> Person:
    """Someone of the same family living at the same address (a spouse, a child)."""
    other = person(rng, born_from, born_to)
    return replace(other, family=of.family, home=of.home)


def home(rng: random.Random) -> Home:
    town, postal, _, _ = rng.choice(TOWNS)
    street = f"{rng.randint(1, 180)} {rng.choice(STREET_KINDS)} {rng.choice(STREET_NAMES)}"
    return Home(street, town, postal)


def phone(rng: random.Random) -> str:
    pairs = " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
    return f"+33 {rng.choice('67')} {pairs}"
