"""Derive Rempart's table of FHIR R4 compartments from the official definitions.

Reads the R4 CompartmentDefinition Bundle (FHIR R4 4.0.1, ``hl7.fhir.r4.core``) and
writes ``src/rempart/fhir/tables/compartments.json``, which ``rempart.fhir.compartments``
loads at run time (FHIR R4 §3.2.1 Compartments, §2.37 CompartmentDefinition).

The table maps each compartment type (Patient, Encounter, RelatedPerson, Practitioner,
Device) to its member resource types, each with the search parameters that link a
resource of that type to the compartment's focal resource, in the definition's order.
The ``{def}`` marker (the focal resource itself, e.g. ``Encounter`` in the Encounter
compartment) is not a search parameter and is left out; a resource type left without
parameters is not a member. The ``example`` CompartmentDefinition is skipped.

Usage: ``python scripts/derive_compartments.py [definitions folder]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT.parent / "shared" / "data" / "fhir-r4" / "definitions"
OUTPUT = ROOT / "src" / "rempart" / "fhir" / "tables" / "compartments.json"

Json = dict[str, Any]


def derive(bundle: Json) -> Json:
    """The table of compartments, from the CompartmentDefinition Bundle."""
    definitions = [entry["resource"] for entry in bundle["entry"]]
    compartments = {
        definition["code"]: _members(definition)
        for definition in definitions
        if definition["id"] != "example"
    }
    [version] = {definition["version"] for definition in definitions if "version" in definition}
    return {
        "about": f"Derived from the FHIR {version} CompartmentDefinitions by"
        " scripts/derive_compartments.py; do not edit. See rempart.fhir.compartments.",
        "compartments": compartments,
    }


def _members(definition: Json) -> dict[str, list[str]]:
    members = {}
    for resource in definition.get("resource", []):
        params = [code for code in resource.get("param", []) if not code.startswith("{")]
        if params:
            members[resource["code"]] = params
    return members


def render(table: Json) -> str:
    return json.dumps(table, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def load(folder: Path) -> Json:
    text = (folder / "compartment-definitions.json").read_text(encoding="utf-8")
    result: Json = json.loads(text)
    return result


def main(argv: list[str]) -> None:
    folder = Path(argv[1]) if len(argv) > 1 else DEFINITIONS
    table = derive(load(folder))
    OUTPUT.write_text(render(table), encoding="utf-8")
    sizes = ", ".join(f"{code} {len(m)}" for code, m in sorted(table["compartments"].items()))
    print(f"{OUTPUT.relative_to(ROOT)}: {OUTPUT.stat().st_size} bytes; members: {sizes}")


if __name__ == "__main__":
    main(sys.argv)
