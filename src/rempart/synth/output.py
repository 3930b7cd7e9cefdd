"""Writing a generated establishment to files, as NDJSON or as transaction Bundles.

NDJSON follows the FHIR Bulk Data convention: one file per resource type
(``Patient.ndjson``, ``Observation.ndjson``…), one resource per line. Bundles are
transaction Bundles of at most ``entries`` entries (``bundle-000001.json``…), each
entry a ``PUT Type/id``, so importing them twice leaves one copy of each resource.
Both also get ``roster/roster.json`` and ``roster/care.ndjson`` (:mod:`rempart.synth.roster`),
kept in their own folder so that ``rempart import DIR/*.ndjson`` takes only FHIR.
The bytes depend only on the generator's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from rempart.synth.generator import Generator
from rempart.synth.roster import care_json

Tick = Callable[[int], None]
"""Told the number of resources just written."""


def write_ndjson(generator: Generator, out: Path, tick: Tick) -> int:
    """Writes one NDJSON file per type; returns the number of resources."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    with ExitStack() as stack, _care_file(out) as care:
        files: dict[str, IO[bytes]] = {}
        for batch in _batches(generator, care):
            for resource in batch:
                type_ = resource["resourceType"]
                if type_ not in files:
                    files[type_] = stack.enter_context(open(out / f"{type_}.ndjson", "wb"))
                files[type_].write(orjson.dumps(resource) + b"\n")
            total += len(batch)
            tick(len(batch))
    _write_roster(generator, out)
    return total


def write_bundles(generator: Generator, out: Path, tick: Tick, entries: int = 500) -> int:
    """Writes transaction Bundles of at most ``entries`` PUTs; returns the resources."""
    out.mkdir(parents=True, exist_ok=True)
    total, pending, number = 0, [], 0
    with _care_file(out) as care:
        for batch in _batches(generator, care):
            pending.extend(batch)
            while len(pending) >= entries:
                number += 1
                _write_bundle(out, number, pending[:entries])
                total, pending = total + entries, pending[entries:]
                tick(entries)
        if pending:
            _write_bundle(out, number + 1, pending)
            total += len(pending)
            tick(len(pending))
    _write_roster(generator, out)
    return total


def _batches(generator: Generator, care: IO[bytes]) -> Iterator[list[dict[str, Any]]]:
    """The establishment, then each patient's resources (their care line written)."""
    yield list(generator.establishment())
    for record in generator.records():
        care.write(orjson.dumps(care_json(record.care)) + b"\n")
        yield record.resources


def _write_bundle(out: Path, number: int, resources: list[dict[str, Any]]) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }
    (out / f"bundle-{number:06d}.json").write_bytes(orjson.dumps(bundle))


def _care_file(out: Path) -> IO[bytes]:
    (out / "roster").mkdir(exist_ok=True)
    return open(out / "roster" / "care.ndjson", "wb")


def _write_roster(generator: Generator, out: Path) -> None:
    roster = orjson.dumps(generator.roster.to_json(), option=orjson.OPT_INDENT_2)
    (out / "roster" / "roster.json").write_bytes(roster + b"\n")
