"""Synthetic clinical resources for the benchmark: Patients and vital-sign Observations.

Realistic in shape and size (about 1-2 KB of FHIR JSON each): identifiers, names,
telecom, addresses, contacts; LOINC codes with UCUM quantities and reference ranges.
Deterministic for a given seed, so two runs load the same data.
"""

from __future__ import annotations

import random
from typing import Any

FAMILY = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
]
GIVEN = [
    ("Camille", "female"),
    ("Louis", "male"),
    ("Léa", "female"),
    ("Gabriel", "male"),
    ("Chloé", "female"),
    ("Hugo", "male"),
    ("Manon", "female"),
    ("Jules", "male"),
]
CITIES = [
    ("Lyon", "69003"),
    ("Paris", "75012"),
    ("Lille", "59000"),
    ("Nantes", "44000"),
    ("Bordeaux", "33000"),
    ("Toulouse", "31000"),
    ("Rennes", "35000"),
]
STREETS = ["rue de la République", "avenue Jean Jaurès", "boulevard Voltaire", "rue Pasteur"]
# (LOINC code, display, UCUM unit, low, high): adult reference ranges.
VITALS = [
    ("8867-4", "Heart rate", "/min", 60, 100),
    ("8310-5", "Body temperature", "Cel", 36.1, 37.8),
    ("9279-1", "Respiratory rate", "/min", 12, 20),
    ("2708-6", "Oxygen saturation in Arterial blood", "%", 95, 100),
    ("29463-7", "Body weight", "kg", 40, 120),
]
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def patient(rng: random.Random) -> dict[str, Any]:
    given, gender = rng.choice(GIVEN)
    family = rng.choice(FAMILY)
    city, postal = rng.choice(CITIES)
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "use": "official",
                "system": "urn:oid:1.2.250.1.213.1.4.8",
                "value": f"{rng.randint(1, 2)}{rng.randint(10**11, 10**12 - 1)}",
            },
            {
                "use": "usual",
                "system": "urn:oid:1.2.250.1.71.4.2.7",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ]
                },
                "value": f"IPP{rng.randint(10**7, 10**8 - 1)}",
            },
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given, rng.choice(GIVEN)[0]]}],
        "telecom": [
            {
                "system": "phone",
                "value": f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} "
                f"{rng.randint(10, 99)} {rng.randint(10, 99)}",
                "use": "mobile",
            },
            {
                "system": "email",
                "value": f"{given.lower()}.{family.lower()}@example.org",
                "use": "home",
            },
        ],
        "gender": gender,
        "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": [f"{rng.randint(1, 200)} {rng.choice(STREETS)}"],
                "city": city,
                "postalCode": postal,
                "country": "FR",
            }
        ],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "M",
                    "display": "Married",
                }
            ]
        },
        "contact": [
            {
                "relationship": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                "code": "N",
                                "display": "Next-of-Kin",
                            }
                        ]
                    }
                ],
                "name": {"family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)[0]]},
                "telecom": [{"system": "phone", "value": f"+33 1 {rng.randint(10, 99)} 00 00 00"}],
            }
        ],
        "communication": [
            {
                "language": {
                    "coding": [
                        {"system": "urn:ietf:bcp:47", "code": "fr-FR", "display": "French (France)"}
                    ]
                },
                "preferred": True,
            }
        ],
    }


def observation(rng: random.Random, patient_id: str) -> dict[str, Any]:
    code, display, unit, low, high = rng.choice(VITALS)
    value = round(rng.uniform(low * 0.9, high * 1.1), 1)
    day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    quantity = {"system": "http://unitsofmeasure.org", "unit": unit, "code": unit}
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": code, "display": display}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00+01:00",
        "issued": f"{day}T23:59:00.000+01:00",
        "performer": [{"display": f"Dr {rng.choice(FAMILY)}"}],
        "valueQuantity": {"value": value, **quantity},
        "interpretation": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": "N" if low <= value <= high else ("L" if value < low else "H"),
                    }
                ]
            }
        ],
        "referenceRange": [
            {
                "low": {"value": low, **quantity},
                "high": {"value": high, **quantity},
                "text": "Adult reference range",
            }
        ],
        "note": [
            {"text": "Measured at rest, seated, after five minutes; device calibrated this week."}
        ],
    }
