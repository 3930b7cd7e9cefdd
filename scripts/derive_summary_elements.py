"""Derive Rempart's table of FHIR R4 summary and mandatory elements from the definitions.

Reads the R4 StructureDefinitions (FHIR R4 4.0.1, ``hl7.fhir.r4.core``) and writes
``src/rempart/fhir/tables/summary_elements.json``, which ``rempart.fhir.elements`` uses
to answer ``_summary`` and ``_elements`` (FHIR R4 §3.1.1.5.8 and §3.1.1.5.9;
§2.24.0.1 ElementDefinition.isSummary and .min).

For every resource type (the base ``specialization`` resources, the abstract
DomainResource, and Resource itself) the table lists, from the snapshot so that
inherited elements such as ``id``, ``meta`` and ``implicitRules`` count:

- ``summary``: the top-level elements marked ``isSummary``;
- ``mandatory``: the top-level elements with ``min >= 1``;
- ``choices``: every top-level choice element, so that ``valueQuantity`` is known to be
  the element ``value``.

A choice element ``value[x]`` is recorded by its prefix, ``value``.

Usage: ``python scripts/derive_summary_elements.py [definitions folder]``.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT.parent / "shared" / "data" / "fhir-r4" / "definitions"
OUTPUT = ROOT / "src" / "rempart" / "fhir" / "tables" / "summary_elements.json"

Json = dict[str, Any]


def derive(bundle: Json) -> Json:
    """The table of elements by resource type, from the StructureDefinition Bundle."""
    definitions = [entry["resource"] for entry in bundle["entry"]]
    base = [sd for sd in definitions if _is_base_resource(sd)]
    [version] = {sd["fhirVersion"] for sd in base}
    return {
        "about": f"Derived from the FHIR {version} StructureDefinitions by"
        " scripts/derive_summary_elements.py; do not edit. See rempart.fhir.elements.",
        "types": {sd["type"]: _elements(sd) for sd in base},
    }


def _is_base_resource(sd: Json) -> bool:
    if sd["kind"] != "resource":
        return False
    return sd.get("derivation") == "specialization" or sd["type"] == "Resource"


def _elements(sd: Json) -> dict[str, list[str]]:
    top = [e for e in sd["snapshot"]["element"] if e["path"].count(".") == 1]
    return {
        "summary": sorted(_name(e) for e in top if e.get("isSummary")),
        "mandatory": sorted(_name(e) for e in top if e.get("min", 0) >= 1),
        "choices": sorted(_name(e) for e in top if e["path"].endswith("[x]")),
    }


def _name(element: Json) -> str:
    name: str = element["path"].split(".", 1)[1]
    return name.removesuffix("[x]")


def render(table: Json) -> str:
    return json.dumps(table, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def load(folder: Path) -> Json:
    with gzip.open(folder / "structure-definitions.json.gz", "rt", encoding="utf-8") as file:
        result: Json = json.load(file)
    return result


def main(argv: list[str]) -> None:
    folder = Path(argv[1]) if len(argv) > 1 else DEFINITIONS
    table = derive(load(folder))
    OUTPUT.write_text(render(table), encoding="utf-8")
    types = table["types"]
    summary = sum(len(t["summary"]) for t in types.values())
    mandatory = sum(len(t["mandatory"]) for t in types.values())
    print(
        f"{OUTPUT.relative_to(ROOT)}: {OUTPUT.stat().st_size} bytes, {len(types)} types, "
        f"{summary} summary elements, {mandatory} mandatory elements"
    )


if __name__ == "__main__":
    main(sys.argv)
