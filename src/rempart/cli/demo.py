"""``rempart demo``: the server on the embedded default with a few demo records.

The records are made here (French names, vital signs with LOINC and UCUM) and
written with fixed ids, so running the demo twice does not duplicate them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from typing import Any

from rempart.config import Settings
from rempart.fhir.validation import FhirkitValidator
from rempart.rest.common import renderer
from rempart.rest.context import Context
from rempart.rest.paging import CursorSigner
from rempart.storage.open import open_store
from rempart.storage.ports import WriteRequest

FAMILY = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]
GIVEN = [("Camille", "female"), ("Louis", "male"), ("Léa", "female"), ("Gabriel", "male")]
PATIENTS = 20


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rempart.cli.main import run_serve

    asyncio.run(load(settings))
    print(f"Demo data loaded: {PATIENTS} patients. FHIR base: http://{args.host}:{args.port}/fhir")
    return run_serve(args, settings)


async def load(settings: Settings) -> None:
    store = await open_store(settings)
    ctx = Context(store, FhirkitValidator(), settings.limits, CursorSigner(b"demo"))
    try:
        for resource in demo_resources(seed=7):
            id_ = resource["id"]
            if await store.read(resource["resourceType"], id_) is None:
                write = WriteRequest(resource["resourceType"], id_, renderer(ctx, resource, id_))
                await store.write(write)
    finally:
        await store.close()


def demo_resources(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    resources: list[dict[str, Any]] = []
    for n in range(PATIENTS):
        given, gender = rng.choice(GIVEN)
        patient_id = f"demo-patient-{n}"
        resources.append(
            {
                "resourceType": "Patient",
                "id": patient_id,
                "name": [{"family": rng.choice(FAMILY), "given": [given]}],
                "gender": gender,
                "birthDate": _birth_date(rng),
            }
        )
        resources.append(_heart_rate(patient_id, rng.randint(55, 110)))
    return resources


def _heart_rate(patient_id: str, bpm: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-hr",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {
            "value": bpm,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def _birth_date(rng: random.Random) -> str:
    return f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
