"""``rempart demo``: Rempart on the embedded default with a synthetic clinic loaded,
demo accounts printed, and light simulated traffic in the background so that the
audit trail has life in it (docs/simulator.md#rempart-demo).

Idempotent: the clinic is generated and imported once (``<data-dir>/demo/imported``
marks it done); accounts and clients that exist are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time
from pathlib import Path

from rempart.cli.demo_traffic import CLINICIANS, Traffic
from rempart.cli.importer import load as import_files
from rempart.cli.token import write_client_key
from rempart.config import Settings
from rempart.security.registry import ClientSpec, UserSpec, client_record, user_record
from rempart.storage.crypto import create_exclusive
from rempart.storage.open import open_auth_store
from rempart.surveillance.simulator.accounts import folder as accounts_folder
from rempart.surveillance.simulator.accounts import register
from rempart.surveillance.simulator.actors import Cast, cast
from rempart.surveillance.simulator.world import load_world
from rempart.synth.generator import PRESETS, Generator
from rempart.synth.output import write_ndjson

SEED = 7


def add_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--traffic-rate", type=float, default=1.0, help="simulated requests per second (0: none)"
    )
    command.add_argument("--patients", type=int, default=PRESETS["clinic"], help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rempart.cli.main import run_serve

    started = time.monotonic()
    hospital = prepare(settings, args.patients)
    origin = f"http://{args.host}:{args.port}"
    world = load_world(hospital)
    people = cast(world, CLINICIANS)
    asyncio.run(register(settings, people, world.reference))
    print(asyncio.run(demo_access(settings, origin, people)))
    print(_simulated_accounts(settings, people))
    traffic = None
    if args.traffic_rate > 0:
        traffic = Traffic(settings, origin, hospital, args.traffic_rate, started)
        traffic.start()
    try:
        _exit_quietly_after_serving()
        return run_serve(args, settings)
    finally:
        if traffic is not None:
            traffic.stop()


def _exit_quietly_after_serving() -> None:
    """uvicorn, once shut down by SIGINT or SIGTERM, raises that signal again for the
    handler it found in place; the demo has nothing left to do but stop its traffic,
    so that handler does nothing and the command ends with status 0."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, frame: None)


def prepare(settings: Settings, patients: int) -> Path:
    """The demo clinic, generated and imported unless that was done before."""
    demo = settings.storage.data_dir / "demo"
    hospital = demo / "hospital"
    done = demo / "imported"
    if done.exists():
        print(f"Demo clinic already imported ({hospital}).")
        return hospital
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = write_ndjson(Generator(patients, seed=SEED), hospital, lambda n: None)
    print(f"Generated a clinic of {patients} patients ({written} resources); importing.")
    if asyncio.run(import_files(settings, sorted(hospital.glob("*.ndjson")), 500)) != 0:
        print("rempart: some demo resources were rejected", file=sys.stderr)
    done.write_text("done\n", encoding="utf-8")
    return hospital


async def demo_access(settings: Settings, origin: str, people: Cast) -> str:
    """A backend client and a clinician account for trying the API; how to use them."""
    folder = settings.storage.data_dir / "demo"
    key_file, password_file = folder / "demo-backend.pem", folder / "demo.clinician.password"
    physician = next((a for a in people.clinicians if a.role == "physician"), None)
    fhir_user = physician.fhir_user if physician else None
    store = await open_auth_store(settings)
    try:
        if await store.client(DEMO_CLIENT) is None:
            jwks = write_client_key(key_file, "demo-1")
            spec = ClientSpec(DEMO_CLIENT, "system/*.cruds", jwks)
            await store.put_client(client_record(spec))
        if await store.user(DEMO_USER) is None:
            password = secrets.token_urlsafe(12)
            create_exclusive(password_file, password.encode())
            spec_user = UserSpec(DEMO_USER, password, fhir_user, "physician")
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


def _simulated_accounts(settings: Settings, people: Cast) -> str:
    shown = [*people.clinicians[:3], *people.admission[:1]]
    if people.patient_app is not None:
        shown.append(people.patient_app)
    lines = [f"    {actor.name:28} {actor.role}" for actor in shown]
    secrets_file = accounts_folder(settings) / "accounts.json"
    log = settings.storage.data_dir / "demo" / "traffic.ndjson"
    return "\n".join(
        [
            f"Simulated staff (their passwords and TOTP secrets are in {secrets_file}), e.g.:",
            *lines,
            f"Background traffic is logged to {log} and audited like any other.",
        ]
    )


DEMO_CLIENT, DEMO_USER = "demo-backend", "demo.clinician"
DEMO_HELP = """
Access (nothing under /fhir is served without a token):
  TOKEN=$(.venv/bin/rempart token --client-id {client} --kid demo-1 \\
      --key-file {key} --scope 'system/*.rs' --url {origin})
  curl -H "Authorization: Bearer $TOKEN" {origin}/fhir/Patient?_count=5
Clinician account for the login page ({origin}/auth/authorize, SMART app launch):
  username {user} (role physician), password in {password}, TOTP secret {totp}
"""
