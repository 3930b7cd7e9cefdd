"""Small builders of FHIR R4 JSON elements shared by the generator's modules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

SYNTH = "https://rempart.example/fhir/synth"
"""Base of the code systems and identifier systems this generator invents."""
STAFF_ROLE = f"{SYNTH}/CodeSystem/staff-role"
SYNTH_TAG = f"{SYNTH}/CodeSystem/tag"


def ref(type_: str, id_: str, display: str | None = None) -> dict[str, Any]:
    reference: dict[str, Any] = {"reference": f"{type_}/{id_}"}
    if display:
        reference["display"] = display
    return reference


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    result = {"system": system, "code": code}
    if display:
        result["display"] = display
    return result


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A CodeableConcept of one coding; its text is the display."""
    result: dict[str, Any] = {"coding": [coding(system, code, display)]}
    if display:
        result["text"] = display
    return result


def instant(moment: datetime) -> str:
    """A FHIR dateTime in UTC to the second (the generator works in UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def day(value: date) -> str:
    return value.isoformat()
