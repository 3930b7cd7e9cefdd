"""Load the resources that read and vread pick from, through Rempart's own create.

Going through the API (not the database) means the rows are exactly what Rempart
writes: encrypted bodies, version 1, as the baseline then reads them.
"""

from __future__ import annotations

import http.client
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fixtures

HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}
CLIENTS = 8


def preload(
    port: int, count: int, seed: int = 1, headers: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """Create ``count`` resources, half Patients, half their Observations: (type, id)s.
    ``headers``: the server's own (its bearer token)."""
    rng = random.Random(seed)
    sent = {**HEADERS, **(headers or {})}
    patients = _create_all(port, [fixtures.patient(rng) for _ in range(count // 2)], sent)
    observations = [
        fixtures.observation(rng, rng.choice(patients)[1]) for _ in range(count - len(patients))
    ]
    return patients + _create_all(port, observations, sent)


def create_bodies(ids: list[tuple[str, str]], count: int = 200, seed: int = 2) -> list[str]:
    """Lines "Type<TAB>JSON" for the create load: new Patients and Observations."""
    rng = random.Random(seed)
    patient_ids = [id_ for type_, id_ in ids if type_ == "Patient"]
    lines = []
    for n in range(count):
        resource = (
            fixtures.patient(rng) if n % 2 else fixtures.observation(rng, rng.choice(patient_ids))
        )
        lines.append(f"{resource['resourceType']}\t{json.dumps(resource, ensure_ascii=False)}")
    return lines


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _create_all(
    port: int, resources: list[dict[str, Any]], headers: dict[str, str]
) -> list[tuple[str, str]]:
    chunks = [resources[n::CLIENTS] for n in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = pool.map(lambda chunk: _create_chunk(port, chunk, headers), chunks)
    return [pair for chunk in results for pair in chunk]


def _create_chunk(
    port: int, resources: list[dict[str, Any]], headers: dict[str, str]
) -> list[tuple[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    created = []
    try:
        for resource in resources:
            type_ = resource["resourceType"]
            conn.request("POST", f"/fhir/{type_}", json.dumps(resource).encode(), headers)
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"preload create {type_} answered {response.status}")
            # Location: <base>/Type/id/_history/1
            created.append((type_, response.headers["location"].split("/")[-3]))
    finally:
        conn.close()
    return created
