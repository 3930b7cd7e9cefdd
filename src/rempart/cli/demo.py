"""``rempart demo``: the server on the embedded default with a few demo records.

The records are made here (French names, vital signs with LOINC and UCUM) and
written with fixed ids, so running the demo twice does not duplicate them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
from typing import Any

from rempart.cli.token import write_client_key
from rempart.config import Settings
from rempart.fhir.validation import FhirkitValidator
from rempart.rest.common import renderer
from rempart.rest.context import Context
from rempart.rest.paging import CursorSigner
from rempart.security.registry import ClientSpec, UserSpec, client_record, user_record
from rempart.storage.crypto import create_exclusive
from rempart.storage.open import open_auth_store, open_store
from rempart.storage.ports import WriteRequest

FAMILY = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]
GIVEN = [("Camille", "female"), ("Louis", "male"), ("Léa", "female"), ("Gabriel", "male")]
PATIENTS = 20


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rempart.cli.main import run_serve

    asyncio.run(load(settings))
    origin = f"http://{args.host}:{args.port}"
    print(f"Demo data loaded: {PATIENTS} patients. FHIR base: {origin}/fhir")
    print(asyncio.run(demo_access(settings, origin)))
    return run_serve(args, settings)


async def demo_access(settings: Settings, origin: str) -> str:
    """A backend client and a clinician account for trying the API; how to use them."""
    folder = settings.storage.data_dir / "demo"
    key_file, password_file = folder / "demo-backend.pem", folder / "demo.clinician.password"
    store = await open_auth_store(settings)
    try:
        if await store.client(DEMO_CLIENT) is None:
            jwks = write_client_key(key_file, "demo-1")
            spec = ClientSpec(DEMO_CLIENT, "system/*.cruds", jwks)
            await store.put_client(client_record(spec))
        if await store.user(DEMO_USER) is None:
            password = secrets.token_urlsafe(12)
            create_exclusive(password_file, password.encode())
            spec_user = UserSpec(DEMO_USER, password, "Practitioner/demo-practitioner")
            await store.put_user(user_record(spec_user))
        user = await store.user(DEMO_USER)
    finally:
        await store.close()
    assert user is not None
    return DEMO_HELP.format(
        origin=origin,
        key=key_file,
        client=DEMO_CLIENT,
        user=DEMO_USER,
        password=password_file,
        totp=user.totp_secret,
    )


DEMO_CLIENT, DEMO_USER = "demo-backend", "demo.clinician"
DEMO_HELP = """
Access (nothing under /fhir is served without a token):
  TOKEN=$(.venv/bin/rempart token --client-id {client} --kid demo-1 \\
      --key-file {key} --scope 'system/*.rs' --url {origin})
  curl -H "Authorization: Bearer $TOKEN" {origin}/fhir/Patient?_count=5
Clinician account for the login page ({origin}/auth/authorize, SMART app launch):
  username {user}, password in {password}, TOTP secret {totp}
"""


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
