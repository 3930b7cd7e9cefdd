"""Derive Rempart's table of FHIR R4 search parameters from the official definitions.

Reads the R4 SearchParameter Bundle and StructureDefinitions (FHIR R4 4.0.1,
``hl7.fhir.r4.core``) and writes ``src/rempart/fhir/tables/search_parameters.json``,
which ``rempart.fhir.search.parameters`` loads at run time (FHIR R4 §3.1.1 Search,
§2.38 SearchParameter).

The table maps each resource type to its parameters by code. A parameter is
``{"type": ..., "expression": ...}`` with, where they apply, ``"target"`` (the types a
reference parameter may point to) and ``"components"`` (for a composite: the code, type
and relative expression of each component). The official expression is a union over
every base type (``AllergyIntolerance.code | Condition.code | ...``); only the branches
for the resource type are kept, so ``expression`` is evaluated on that type alone.
Parameters based on ``Resource`` apply to every resource type, those based on
``DomainResource`` to every type derived from it. A parameter without an expression
(``_text``, ``_content``, ``_query``, ``_filter``) or without a branch for a type is
left out for that type, and reported when the script runs.

Usage: ``python scripts/derive_search_parameters.py [definitions folder]``.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

from rempart.fhir.search.fhirpath_compile import split_union

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT.parent / "shared" / "data" / "fhir-r4" / "definitions"
OUTPUT = ROOT / "src" / "rempart" / "fhir" / "tables" / "search_parameters.json"

Json = dict[str, Any]
_HEAD = re.compile(r"\(*([A-Za-z]+)\b")


def branches_for(expression: str, type_: str, bases: list[str]) -> list[str]:
    """The branches of ``expression`` that apply to ``type_``, rooted at ``type_``."""
    kept = []
    for branch in split_union(expression):
        match = _HEAD.match(branch)
        head = match.group(1) if match else ""
        if head == type_:
            kept.append(branch)
        elif head in ("Resource", "DomainResource"):
            kept.append(branch.replace(head, type_, 1))
        elif not head[:1].isupper() and len(bases) == 1:
            kept.append(f"{type_}.{branch}")  # a relative branch, e.g. ``name | alias``
    return kept


def resource_types(structures: Json) -> dict[str, str]:
    """Every concrete resource type with the type it derives from."""
    types = {}
    for entry in structures["entry"]:
        definition = entry["resource"]
        concrete = not definition.get("abstract") and definition.get("derivation") != "constraint"
        if definition.get("kind") == "resource" and concrete:
            types[definition["type"]] = definition["baseDefinition"].rsplit("/", 1)[-1]
    return types


def derive(parameters: list[Json], types: dict[str, str]) -> Json:
    """The table of parameters by resource type, and what was left out."""
    by_url = {parameter["url"]: parameter for parameter in parameters}
    table: dict[str, dict[str, Json]] = {type_: {} for type_ in sorted(types)}
    skipped: list[str] = []
    for parameter in parameters:
        if parameter["id"].startswith("example"):
            # The specification's own examples (``example-reference`` redefines
            # Condition ``subject`` with target Organization): not definitions.
            skipped.append(parameter["id"])
            continue
        for type_ in _applies_to(parameter.get("base") or [], types):
            entry = _entry(parameter, type_, by_url)
            if entry is None:
                skipped.append(f"{type_}.{parameter['code']}")
            else:
                table[type_][parameter["code"]] = entry
        if not parameter.get("base"):
            skipped.append(parameter["id"])
    return {"types": table, "skipped": sorted(skipped)}


def _applies_to(bases: list[str], types: dict[str, str]) -> list[str]:
    if "Resource" in bases:
        return sorted(types)
    if "DomainResource" in bases:
        return sorted(type_ for type_, parent in types.items() if parent == "DomainResource")
    return [base for base in bases if base in types]


def _entry(parameter: Json, type_: str, by_url: dict[str, Json]) -> Json | None:
    expression = parameter.get("expression")
    if not expression:
        return None
    branches = branches_for(expression, type_, parameter.get("base") or [])
    if not branches:
        return None
    entry: Json = {"type": parameter["type"], "expression": " | ".join(branches)}
    if parameter.get("target"):
        entry["target"] = sorted(parameter["target"])
    if parameter.get("component"):
        entry["components"] = [_component(part, by_url) for part in parameter["component"]]
    return entry


def _component(part: Json, by_url: dict[str, Json]) -> Json:
    definition = by_url[part["definition"]]
    return {
        "code": definition["code"],
        "type": definition["type"],
        "expression": part["expression"],
    }


def render(value: Json) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def main(argv: list[str]) -> None:
    folder = Path(argv[1]) if len(argv) > 1 else DEFINITIONS
    bundle = json.loads((folder / "search-parameters.json").read_text(encoding="utf-8"))
    with gzip.open(folder / "structure-definitions.json.gz", "rt", encoding="utf-8") as file:
        types = resource_types(json.load(file))
    parameters = [entry["resource"] for entry in bundle["entry"]]
    table = derive(parameters, types)
    OUTPUT.write_text(render({"types": table["types"]}), encoding="utf-8")
    count = sum(len(by_code) for by_code in table["types"].values())
    generic = ("._text", "._content", "._query", "._filter")
    print("left out:", *(name for name in table["skipped"] if not name.endswith(generic)))
    print(
        f"{OUTPUT.relative_to(ROOT)}: {OUTPUT.stat().st_size} bytes, {len(types)} types, "
        f"{count} parameters, {len(table['skipped'])} skipped"
    )


if __name__ == "__main__":
    main(sys.argv)
