"""A synthetic French hospital as FHIR R4 transaction Bundles, for the search benchmark.

Deterministic: the same ``seed`` gives byte-identical bundles. Per patient: one
Patient (INS and MRN identifiers), 1-3 Encounters, about 20 Observations (vital
signs and labs, LOINC and UCUM), 1-3 Conditions (SNOMED CT), 1-3 MedicationRequests
(ATC). One Organization and a few Practitioners are shared by everyone.

The first bundle holds the shared resources, written with ``PUT`` and fixed ids so
that every later bundle can refer to them literally: import it before the others.
In later bundles the Patients and Encounters carry ``urn:uuid:`` fullUrls that the
other entries refer to, and that the server must rewrite (FHIR R4 §3.1.0.11.2,
"Resolving references in Bundles"); every entry is a ``POST``.

Usage::

    .venv/bin/python bench/clinical_data.py --resources 100000 --out /tmp/hospital

writes ``bundles.ndjson`` (one Bundle per line) and prints the generation rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
MRN_SYSTEM = "https://hopital.example/mrn"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
ORGANIZATION_ID = "bench-hopital"
PRACTITIONER_IDS = [f"bench-practitioner-{n:02d}" for n in range(1, 13)]
PARIS = timezone(timedelta(hours=1))
# Encounters fall in this window, so a one-month date search matches about 1/18 of them.
FIRST_DAY = datetime(2023, 7, 1, tzinfo=PARIS)
WINDOW_DAYS = 548
BUNDLE_ENTRIES = 200

# Weighted like French surname frequencies: "Martin" is the most common by far.
FAMILIES = [
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
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "Andre",
    "Mercier",
]
FAMILY_WEIGHTS = [1 / (rank + 1) ** 0.8 for rank in range(len(FAMILIES))]
COMMON_FAMILY = FAMILIES[0]
GIVEN = {
    "male": ["Jean", "Pierre", "Michel", "Louis", "Paul", "Hugo", "Lucas", "Nicolas", "Karim",
             "Antoine", "Julien", "Mathieu", "Yann", "Olivier"],
    "female": ["Marie", "Jeanne", "Camille", "Chloé", "Léa", "Manon", "Sophie", "Nathalie",
               "Isabelle", "Inès", "Claire", "Amina", "Julie", "Anne"],
}  # fmt: skip
CITIES = [
    ("Paris", "75013"),
    ("Lyon", "69003"),
    ("Marseille", "13005"),
    ("Lille", "59000"),
    ("Toulouse", "31000"),
    ("Nantes", "44000"),
    ("Bordeaux", "33000"),
    ("Créteil", "94000"),
]
STREETS = [
    "rue de la République",
    "avenue Jean Jaurès",
    "boulevard Victor Hugo",
    "rue Pasteur",
    "place de la Mairie",
    "rue des Écoles",
    "allée des Tilleuls",
]
CONDITIONS = [
    ("38341003", "Hypertensive disorder"),
    ("44054006", "Diabetes mellitus type 2"),
    ("195967001", "Asthma"),
    ("13645005", "Chronic obstructive lung disease"),
    ("49436004", "Atrial fibrillation"),
    ("35489007", "Depressive disorder"),
    ("414545008", "Ischemic heart disease"),
    ("709044004", "Chronic kidney disease"),
    ("55822004", "Hyperlipidemia"),
    ("40930008", "Hypothyroidism"),
]
MEDICATIONS = [
    ("C09AA05", "ramipril", 5, "mg"),
    ("A10BA02", "metformine", 1000, "mg"),
    ("C10AA05", "atorvastatine", 20, "mg"),
    ("B01AC06", "acide acétylsalicylique", 75, "mg"),
    ("R03AC02", "salbutamol", 100, "ug"),
    ("N06AB06", "sertraline", 50, "mg"),
    ("H03AA01", "lévothyroxine", 75, "ug"),
    ("C07AB07", "bisoprolol", 5, "mg"),
    ("B01AF01", "rivaroxaban", 20, "mg"),
    ("N02BE01", "paracétamol", 1000, "mg"),
]
# (class code, display, weight, longest stay in hours)
ENCOUNTER_CLASSES = [
    ("AMB", "ambulatory", 3, 2),
    ("IMP", "inpatient encounter", 1, 120),
    ("EMER", "emergency", 2, 8),
]
# (LOINC code, display, UCUM unit, mean, spread, decimals)
VITALS = [
    ("8867-4", "Heart rate", "/min", 76, 12, 0),
    ("8310-5", "Body temperature", "Cel", 36.9, 0.5, 1),
    ("29463-7", "Body weight", "kg", 72, 14, 1),
]
LABS = [
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 105, 25, 0, (70, 110)),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.6, 1.5, 1, (12, 17)),
]


def generate(
    n_resources_target: int, seed: int = 1, bundle_entries: int = BUNDLE_ENTRIES
) -> Iterator[dict[str, Any]]:
    """Transaction Bundles totalling about ``n_resources_target`` resources, shared ones first."""
    rng = random.Random(seed)
    shared = shared_resources()
    yield transaction([_put(resource) for resource in shared])
    made, entries = len(shared), []
    while made < n_resources_target:
        patient_entries = patient_record(rng)
        entries += patient_entries
        made += len(patient_entries)
        if len(entries) >= bundle_entries:
            yield transaction(entries)
            entries = []
    if entries:
        yield transaction(entries)


def smith_patients(count: int = 1000, smiths: int = 50, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Only Patients, ``smiths`` of them named Smith: Medplum's search benchmark data set."""
    rng = random.Random(seed)
    named_smith = set(rng.sample(range(count), smiths))
    entries = []
    for n in range(count):
        patient = _patient(rng)
        if n in named_smith:
            patient["name"][0]["family"] = "Smith"
        entries.append(_post(patient, _uuid(rng)))
        if len(entries) == BUNDLE_ENTRIES:
            yield transaction(entries)
            entries = []
    if entries:
        yield transaction(entries)


def transaction(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def shared_resources() -> list[dict[str, Any]]:
    rng = random.Random(0)
    organization = {
        "resourceType": "Organization",
        "id": ORGANIZATION_ID,
        "identifier": [{"system": FINESS_SYSTEM, "value": "750000001"}],
        "active": True,
        "type": [_concept(f"{TERMINOLOGY}/organization-type", "prov", "Healthcare Provider")],
        "name": "Hôpital Rempart",
        "address": [
            {"line": ["1 place du Parvis"], "city": "Paris", "postalCode": "75004", "country": "FR"}
        ],
    }
    practitioners = []
    for n, id_ in enumerate(PRACTITIONER_IDS):
        gender = "female" if n % 2 else "male"
        practitioners.append(
            {
                "resourceType": "Practitioner",
                "id": id_,
                "identifier": [{"system": RPPS_SYSTEM, "value": f"10{rng.randrange(10**9):09d}"}],
                "active": True,
                "name": [
                    {
                        "family": rng.choice(FAMILIES),
                        "given": [rng.choice(GIVEN[gender])],
                        "prefix": ["Dr"],
                    }
                ],
                "gender": gender,
            }
        )
    return [organization, *practitioners]


def patient_record(rng: random.Random) -> list[dict[str, Any]]:
    """One Patient and everything recorded about them, as transaction entries."""
    patient_url = _uuid(rng)
    entries = [_post(_patient(rng), patient_url)]
    encounters = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        encounter_url, encounter = _uuid(rng), _encounter(rng, patient_url)
        encounters.append((encounter_url, encounter))
        entries.append(_post(encounter, encounter_url))
    for n in range(rng.randint(17, 23)):
        encounter_url, encounter = encounters[n % len(encounters)]
        entries.append(_post(_observation(rng, n, patient_url, encounter_url, encounter)))
    conditions = rng.sample(CONDITIONS, rng.randint(1, 3))
    for code, display in conditions:
        entries.append(_post(_condition(rng, code, display, patient_url, *encounters[0])))
    for medication in rng.sample(MEDICATIONS, rng.randint(1, 3)):
        entries.append(_post(_medication_request(rng, medication, patient_url, *encounters[-1])))
    return entries


def _patient(rng: random.Random) -> dict[str, Any]:
    gender = rng.choice(("male", "female"))
    born = datetime(1930, 1, 1, tzinfo=PARIS) + timedelta(days=rng.randrange(365 * 90))
    city, postal_code = rng.choice(CITIES)
    given = rng.sample(GIVEN[gender], rng.choice((1, 1, 2)))
    ins = f"{1 if gender == 'male' else 2}{born:%y%m}{postal_code[:2]}{rng.randrange(10**8):08d}"
    return {
        "resourceType": "Patient",
        "identifier": [
            {"use": "official", "system": INS_SYSTEM, "value": ins},
            {
                "use": "usual",
                "type": _concept(f"{TERMINOLOGY}/v2-0203", "MR", "Medical record number"),
                "system": MRN_SYSTEM,
                "value": f"MRN{rng.randrange(10**8):08d}",
            },
        ],
        "active": True,
        "name": [
            {"use": "official", "family": rng.choices(FAMILIES, FAMILY_WEIGHTS)[0], "given": given}
        ],
        "telecom": [
            {"system": "phone", "value": f"+33 6 {rng.randrange(10**8):08d}", "use": "mobile"}
        ],
        "gender": gender,
        "birthDate": born.date().isoformat(),
        "address": [
            {
                "use": "home",
                "line": [f"{rng.randint(1, 120)} {rng.choice(STREETS)}"],
                "city": city,
                "postalCode": postal_code,
                "country": "FR",
            }
        ],
    }


def _encounter(rng: random.Random, patient_url: str) -> dict[str, Any]:
    code, display, _, max_hours = rng.choices(ENCOUNTER_CLASSES, [c[2] for c in ENCOUNTER_CLASSES])[
        0
    ]
    start = FIRST_DAY + timedelta(days=rng.randrange(WINDOW_DAYS), hours=rng.randint(7, 18))
    end = start + timedelta(hours=rng.randint(1, max_hours), minutes=rng.randrange(60))
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": code,
            "display": display,
        },
        "subject": {"reference": patient_url},
        "participant": [{"individual": _practitioner(rng)}],
        "period": {"start": _instant(start), "end": _instant(end)},
        "serviceProvider": {"reference": f"Organization/{ORGANIZATION_ID}"},
    }


def _observation(
    rng: random.Random, n: int, patient_url: str, encounter_url: str, encounter: dict[str, Any]
) -> dict[str, Any]:
    # Every record has heart rate, glucose and hemoglobin: the searches look for them.
    kind = n % 6
    if kind == 4:
        body = _lab(rng, LABS[n // 6 % 2])
    elif kind == 3:
        body = _blood_pressure(rng)
    else:
        body = _vital(rng, VITALS[(n // 6 + kind) % 3] if kind else VITALS[0])
    return {
        "resourceType": "Observation",
        "status": "final",
        **body,
        "subject": {"reference": patient_url},
        "encounter": {"reference": encounter_url},
        "effectiveDateTime": _instant(_during(rng, encounter["period"])),
        "performer": [_practitioner(rng)],
    }


def _vital(rng: random.Random, vital: tuple[str, str, str, float, float, int]) -> dict[str, Any]:
    code, display, unit, mean, spread, decimals = vital
    return {
        "category": [_category("vital-signs", "Vital Signs")],
        "code": _concept(LOINC, code, display),
        "valueQuantity": _quantity(round(rng.gauss(mean, spread / 2), decimals), unit),
    }


def _blood_pressure(rng: random.Random) -> dict[str, Any]:
    systolic = round(rng.gauss(128, 12))
    diastolic = round(rng.gauss(80, 8))
    return {
        "category": [_category("vital-signs", "Vital Signs")],
        "code": _concept(LOINC, "85354-9", "Blood pressure panel with all children optional"),
        "component": [
            {
                "code": _concept(LOINC, "8480-6", "Systolic blood pressure"),
                "valueQuantity": _quantity(systolic, "mm[Hg]"),
            },
            {
                "code": _concept(LOINC, "8462-4", "Diastolic blood pressure"),
                "valueQuantity": _quantity(diastolic, "mm[Hg]"),
            },
        ],
    }


def _lab(rng: random.Random, lab: tuple[str, str, str, float, float, int, Any]) -> dict[str, Any]:
    code, display, unit, mean, spread, decimals, (low, high) = lab
    value = round(rng.gauss(mean, spread), decimals)
    flag = "L" if value < low else "H" if value > high else "N"
    return {
        "category": [_category("laboratory", "Laboratory")],
        "code": _concept(LOINC, code, display),
        "valueQuantity": _quantity(value, unit),
        "interpretation": [_concept(f"{TERMINOLOGY}/v3-ObservationInterpretation", flag, flag)],
        "referenceRange": [{"low": _quantity(low, unit), "high": _quantity(high, unit)}],
    }


def _condition(
    rng: random.Random,
    code: str,
    display: str,
    patient_url: str,
    encounter_url: str,
    encounter: dict[str, Any],
) -> dict[str, Any]:
    onset = datetime.fromisoformat(encounter["period"]["start"]) - timedelta(
        days=rng.randrange(3650)
    )
    return {
        "resourceType": "Condition",
        "clinicalStatus": _concept(f"{TERMINOLOGY}/condition-clinical", "active", "Active"),
        "verificationStatus": _concept(
            f"{TERMINOLOGY}/condition-ver-status", "confirmed", "Confirmed"
        ),
        "category": [
            _concept(f"{TERMINOLOGY}/condition-category", "problem-list-item", "Problem List Item")
        ],
        "code": _concept(SNOMED, code, display),
        "subject": {"reference": patient_url},
        "encounter": {"reference": encounter_url},
        "onsetDateTime": onset.date().isoformat(),
        "recordedDate": encounter["period"]["start"],
        "recorder": _practitioner(rng),
    }


def _medication_request(
    rng: random.Random,
    medication: tuple[str, str, int, str],
    patient_url: str,
    encounter_url: str,
    encounter: dict[str, Any],
) -> dict[str, Any]:
    code, name, dose, unit = medication
    times = rng.choice((1, 2, 3))
    return {
        "resourceType": "MedicationRequest",
        "status": rng.choice(("active", "active", "completed")),
        "intent": "order",
        "medicationCodeableConcept": _concept(ATC, code, name),
        "subject": {"reference": patient_url},
        "encounter": {"reference": encounter_url},
        "authoredOn": encounter["period"]["end"],
        "requester": _practitioner(rng),
        "dosageInstruction": [
            {
                "text": f"{name} {dose} {unit}, {times} fois par jour",
                "timing": {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": _quantity(dose, unit)}],
            }
        ],
    }


def _post(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def _practitioner(rng: random.Random) -> dict[str, str]:
    return {"reference": f"Practitioner/{rng.choice(PRACTITIONER_IDS)}"}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _category(code: str, display: str) -> dict[str, Any]:
    return _concept(f"{TERMINOLOGY}/observation-category", code, display)


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _during(rng: random.Random, period: dict[str, str]) -> datetime:
    start, end = (datetime.fromisoformat(period[k]) for k in ("start", "end"))
    return start + (end - start) * rng.random()


def _instant(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _uuid(rng: random.Random) -> str:
    return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def count_resources(bundle: dict[str, Any]) -> int:
    return len(bundle["entry"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=10_000, help="target resource count")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="directory for bundles.ndjson (none: no write)")
    args = parser.parse_args(argv)
    started, resources, bundles, size = time.perf_counter(), 0, 0, 0
    out = None
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        out = (args.out / "bundles.ndjson").open("w", encoding="utf-8")
    try:
        for bundle in generate(args.resources, args.seed):
            line = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
            resources, bundles, size = (
                resources + count_resources(bundle),
                bundles + 1,
                size + len(line),
            )
            if out:
                out.write(line + "\n")
    finally:
        if out:
            out.close()
    seconds = time.perf_counter() - started
    print(
        f"{resources:,} resources in {bundles:,} bundles, {size / 2**20:.1f} MiB of JSON, "
        f"{seconds:.2f} s: {resources / seconds:,.0f} resources/s (generation + JSON"
        f"{' + write' if out else ''})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
