"""Observations: vital signs (FHIR R4 vital signs profile) and laboratory results.

Vital signs carry the ``vital-signs`` category and the LOINC codes the R4 profile
requires (blood pressure as the 85354-9 panel with systolic and diastolic components);
labs carry ``laboratory`` and are grouped by a DiagnosticReport (``result``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from rempart.synth.catalog import LAB_PANEL, LABS, LOINC, UCUM, VITALS
from rempart.synth.shapes import concept, instant, ref

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"


class Measurer:
    """Makes the observations of one encounter (ids numbered from ``<base>-``)."""

    def __init__(self, rng: random.Random, base: str, patient: str, encounter: str) -> None:
        self.rng, self.base, self.patient, self.encounter = rng, base, patient, encounter
        self.count = 0

    def vital_signs(self, moment: datetime, performer: str) -> Iterator[dict[str, Any]]:
        for code, display, unit, low, high, decimals in VITALS:
            value = self._value(low, high, decimals)
            yield self._observation(
                "vital-signs", code, display, moment, performer, _quantity(value, unit)
            )
        yield self._blood_pressure(moment, performer)

    def labs(self, moment: datetime, performer: str) -> Iterator[dict[str, Any]]:
        """The lab observations, then the DiagnosticReport that groups them."""
        results = []
        for code, display, unit, low, high, decimals in LABS:
            value = self._value(low, high, decimals)
            observation = self._observation(
                "laboratory", code, display, moment, performer, _quantity(value, unit)
            )
            results.append(ref("Observation", observation["id"]))
            yield observation
        yield {
            "resourceType": "DiagnosticReport",
            "id": f"{self.base}-dr",
            "status": "final",
            "category": [concept(REPORT_CATEGORY, "LAB", "Laboratory")],
            "code": concept(LOINC, *LAB_PANEL),
            "subject": ref("Patient", self.patient),
            "encounter": ref("Encounter", self.encounter),
            "effectiveDateTime": instant(moment),
            "issued": instant(moment),
            "performer": [ref("Practitioner", performer)],
            "result": results,
        }

    def _blood_pressure(self, moment: datetime, performer: str) -> dict[str, Any]:
        systolic = self.rng.randint(95, 175)
        diastolic = self.rng.randint(55, min(systolic - 20, 105))
        resource = self._observation(
            "vital-signs", "85354-9", "Blood pressure panel", moment, performer, {}
        )
        resource["component"] = [
            {
                "code": concept(LOINC, "8480-6", "Systolic blood pressure"),
                "valueQuantity": _quantity(systolic, "mm[Hg]"),
            },
            {
                "code": concept(LOINC, "8462-4", "Diastolic blood pressure"),
                "valueQuantity": _quantity(diastolic, "mm[Hg]"),
            },
        ]
        return resource

    def _observation(
        self,
        category: str,
        code: str,
        display: str,
        moment: datetime,
        performer: str,
        quantity: dict[str, Any],
    ) -> dict[str, Any]:
        self.count += 1
        resource = {
            "resourceType": "Observation",
            "id": f"{self.base}-{self.count}",
            "status": "final",
            "category": [concept(CATEGORY, category)],
            "code": concept(LOINC, code, display),
            "subject": ref("Patient", self.patient),
            "encounter": ref("Encounter", self.encounter),
            "effectiveDateTime": instant(moment),
            "performer": [ref("Practitioner", performer)],
        }
        if quantity:
            resource["valueQuantity"] = quantity
        return resource

    def _value(self, low: float, high: float, decimals: int) -> float | int:
        value = round(self.rng.uniform(low, high), decimals)
        return int(value) if decimals == 0 else value


def _quantity(value: float | int, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}
