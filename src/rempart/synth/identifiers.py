"""French identifiers with their check keys, as the national registries compute them.

- INS (Identifiant National de Santé) is the NIR: 13 digits (sex, birth year and month,
  birth département and commune, order number) then a 2-digit key 97 - (n mod 97)
  (ANS, *Guide d'implémentation de l'INS*; OID ``1.2.250.1.213.1.4.8``).
- RPPS numbers (practitioners) and FINESS numbers (establishments) end with a Luhn
  digit; RPPS identifiers are written with the ANS prefix ``8`` (11 digits).
"""

from __future__ import annotations

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"


def nir_key(first13: str) -> str:
    """The two-digit key of a NIR: 97 - (n mod 97)."""
    return f"{97 - int(first13) % 97:02d}"


def ins(sex: int, birth_year: int, birth_month: int, place: str, order: int) -> str:
    """A NIR-shaped INS: ``place`` is département (2) + commune (3) digits."""
    first13 = f"{sex}{birth_year % 100:02d}{birth_month:02d}{place}{order:03d}"
    return first13 + nir_key(first13)


def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits``."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def rpps(number: int) -> str:
    body = f"8{number:09d}"
    return body + luhn_digit(body)


def finess(department: str, number: int) -> str:
    body = f"{department}{number:06d}"
    return body + luhn_digit(body)
