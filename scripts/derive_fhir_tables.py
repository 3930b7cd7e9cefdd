"""Derive Rempart's table of FHIR R4 required bindings from the official definitions.

Reads the R4 StructureDefinitions and terminology Bundles (FHIR R4 4.0.1,
``hl7.fhir.r4.core``) and writes ``src/rempart/fhir/tables/required_bindings.json``,
which ``rempart.fhir.bindings`` walks at run time (FHIR R4 §4.1.5, binding strength
``required``; §2.24.0.1 ElementDefinition.binding; §4.9 ValueSet.compose).

The table holds, for every resource type, complex datatype and backbone element
(named by its path, e.g. ``Patient.contact``), the elements whose subtree can hold a
required-bound coded element (``code``, ``Coding``, ``CodeableConcept``), keyed by
their JSON name (``valueQuantity`` for ``value[x]`` of type Quantity). An element is
either a type name (``"HumanName"``, ``"Patient.contact"``, ``"Resource"`` for a
resource to dispatch on its ``resourceType``) or ``[kind, value set url]``.

``extension`` and ``modifierExtension`` (always of type Extension) are left out: the
walker reads them as Extension wherever they appear, and descends into elements that
are not in the table (``_name``, Coding, ...) only to find them.

A value set is enumerated from its ``compose`` when it only includes whole complete
CodeSystems of the Bundle, explicit concept lists or value sets that are themselves
enumerable; otherwise it is listed in ``notEnumerable`` with the reason, and elements
bound to it are not checked.

Usage: ``python scripts/derive_fhir_tables.py [definitions folder]``.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT.parent / "shared" / "data" / "fhir-r4" / "definitions"
OUTPUT = ROOT / "src" / "rempart" / "fhir" / "tables" / "required_bindings.json"

CODED = ("code", "Coding", "CodeableConcept")
GENERIC = ("extension", "modifierExtension")  # handled by the walker on every element
BACKBONES = ("BackboneElement", "Element")  # an element with children defined inline

Json = dict[str, Any]
Codes = dict[str, set[str]]  # system -> codes
Spec = str | list[str]  # a type name, or [kind, value set url]


# --- value sets ---------------------------------------------------------------------


class Terminology:
    """The ValueSets and CodeSystems of the terminology Bundle, and their expansions."""

    def __init__(self, bundle: Json) -> None:
        resources = [entry["resource"] for entry in bundle["entry"]]
        self.value_sets = _by_url(resources, "ValueSet")
        self.code_systems = _by_url(resources, "CodeSystem")
        self._cache: dict[str, Codes | str] = {}

    def expand(self, url: str) -> Codes | str:
        """The codes of a value set by system, or why they cannot be enumerated."""
        if url not in self._cache:
            self._cache[url] = "imports itself"  # a cycle stops here
            self._cache[url] = self._expand(url)
        return self._cache[url]

    def _expand(self, url: str) -> Codes | str:
        value_set = self.value_sets.get(url)
        if value_set is None:
            return "value set not in the R4 definitions"
        compose = value_set.get("compose", {})
        codes: Codes = {}
        for include in compose.get("include", []):
            part = self._part(include)
            if isinstance(part, str):
                return part
            for system, found in part.items():
                codes.setdefault(system, set()).update(found)
        for exclude in compose.get("exclude", []):
            part = self._part(exclude)
            if isinstance(part, str):
                return f"exclude: {part}"
            for system, found in part.items():
                codes.get(system, set()).difference_update(found)
        codes = {system: found for system, found in codes.items() if found}
        return codes or "no codes in compose"

    def _part(self, include: Json) -> Codes | str:
        """One include/exclude: a system's codes, intersected with imported value sets."""
        if "filter" in include:
            return "uses a filter"
        part: Codes | None = None
        if "system" in include:
            found = self._system_codes(include)
            if isinstance(found, str):
                return found
            part = {include["system"]: found}
        for url in include.get("valueSet", []):
            imported = self.expand(url.split("|")[0])
            if isinstance(imported, str):
                return f"imports {url}, which is not enumerable"
            part = imported if part is None else _intersect(part, imported)
        return part or {}

    def _system_codes(self, include: Json) -> set[str] | str:
        if "concept" in include:
            return {concept["code"] for concept in include["concept"]}
        system = include["system"]
        code_system = self.code_systems.get(system)
        if code_system is None:
            return f"code system {system} not in the R4 definitions"
        if code_system.get("content") != "complete":
            return f"code system {system} is not complete"
        return set(_selectable(code_system.get("concept", [])))


def _by_url(resources: list[Json], resource_type: str) -> dict[str, Json]:
    found = [r for r in resources if r["resourceType"] == resource_type]
    by_url = {r["url"]: r for r in found}
    assert len(by_url) == len(found), f"duplicate {resource_type} urls"
    return by_url


def _selectable(concepts: list[Json]) -> Iterator[str]:
    """All codes of a concept tree, but the abstract ones (notSelectable, §4.8.7)."""
    for concept in concepts:
        flags = concept.get("property", [])
        if not any(p["code"] == "notSelectable" and p.get("valueBoolean") for p in flags):
            yield concept["code"]
        yield from _selectable(concept.get("concept", []))


def _intersect(left: Codes, right: Codes) -> Codes:
    return {s: left[s] & right[s] for s in left.keys() & right.keys()}


# --- elements -----------------------------------------------------------------------


class Elements:
    """Every element of the R4 base resources and datatypes, as JSON name -> spec."""

    def __init__(self, bundle: Json) -> None:
        definitions = [entry["resource"] for entry in bundle["entry"]]
        base = [sd for sd in definitions if _is_base(sd)]
        self.primitives = {sd["type"] for sd in definitions if sd["kind"] == "primitive-type"}
        self.complex = {sd["type"] for sd in base if sd["kind"] == "complex-type"}
        self.roots = sorted(sd["type"] for sd in base if sd["kind"] == "resource")
        [self.version] = {sd["fhirVersion"] for sd in base}
        self.types: dict[str, dict[str, Spec]] = {}
        self.bindings: dict[tuple[str, str], str] = {}  # (type, JSON name) -> value set url
        for sd in base:
            for element in sd["snapshot"]["element"][1:]:
                self._add(element)

    def _add(self, element: Json) -> None:
        owner, name = element["path"].rsplit(".", 1)
        members = self.types.setdefault(owner, {})
        if name in GENERIC:
            assert [t["code"] for t in element["type"]] == ["Extension"], element["path"]
            return
        if "contentReference" in element:
            members[name] = element["contentReference"].lstrip("#")
            return
        binding = element.get("binding", {})
        required = binding.get("strength") == "required"
        for code in (t["code"] for t in element["type"]):
            json_name = name[:-3] + code[0].upper() + code[1:] if name.endswith("[x]") else name
            if required and code in CODED:
                url = binding["valueSet"].split("|")[0]
                members[json_name] = [code, url]
                self.bindings[owner, json_name] = url
            elif spec := self._type_spec(element, code):
                members[json_name] = spec

    def _type_spec(self, element: Json, code: str) -> str | None:
        if code in BACKBONES:
            return str(element["path"])
        if code in self.complex or code == "Resource":
            return code
        assert code in self.primitives or code.startswith("http://hl7.org/fhirpath/"), code
        return None


def _is_base(sd: Json) -> bool:
    """A concrete resource or datatype (abstract ones are inlined in their children)."""
    if sd["kind"] not in ("resource", "complex-type") or sd.get("abstract"):
        return False
    return sd.get("derivation") == "specialization"


# --- the table ----------------------------------------------------------------------


def derive(structures: Json, terminology: Json) -> Json:
    """The table, from the two Bundles."""
    elements = Elements(structures)
    tx = Terminology(terminology)
    urls = sorted(set(elements.bindings.values()))
    expanded = {url: tx.expand(url) for url in urls}
    enumerable = {url: codes for url, codes in expanded.items() if not isinstance(codes, str)}
    relevant = _relevant(elements, enumerable.keys())
    types = {name: _pruned(elements.types[name], relevant, enumerable) for name in relevant}
    return {
        "about": f"Derived from the FHIR {elements.version} definitions by"
        " scripts/derive_fhir_tables.py; do not edit. See rempart.fhir.bindings.",
        "valueSets": {
            url: {system: sorted(found) for system, found in sorted(codes.items())}
            for url, codes in enumerable.items()
        },
        "notEnumerable": {url: why for url, why in expanded.items() if isinstance(why, str)},
        "types": {name: types[name] for name in sorted(types)},
    }


def _relevant(elements: Elements, enumerable: Container[str]) -> set[str]:
    """Types whose subtree can hold a checked code, by fixed point."""
    relevant: set[str] = set()
    changed = True
    while changed:
        before = len(relevant)
        for name, members in elements.types.items():
            if name not in relevant and _reaches(members, relevant, elements, enumerable):
                relevant.add(name)
        changed = len(relevant) != before
    return relevant


def _reaches(
    members: dict[str, Spec], relevant: set[str], elements: Elements, enumerable: Container[str]
) -> bool:
    for spec in members.values():
        if isinstance(spec, list):
            if spec[1] in enumerable:
                return True
        elif spec in relevant or (spec == "Resource" and relevant & set(elements.roots)):
            return True
    return False


def _pruned(
    members: dict[str, Spec], relevant: set[str], enumerable: Container[str]
) -> dict[str, Spec]:
    def keep(spec: Spec) -> bool:
        if isinstance(spec, list):
            return spec[1] in enumerable
        return spec in relevant or spec == "Resource"

    return {name: spec for name, spec in sorted(members.items()) if keep(spec)}


def render(table: Json) -> str:
    """Compact JSON, one value set or type per line so that diffs stay readable."""
    lines = ["{", f'"about":{_compact(table["about"])},']
    for section in ("valueSets", "notEnumerable", "types"):
        items = [f"{_compact(k)}:{_compact(v)}" for k, v in table[section].items()]
        closing = "}" if section == "types" else "},"
        lines += [f'"{section}":{{', ",\n".join(items), closing]
    return "\n".join(lines) + "\n}\n"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load(folder: Path) -> tuple[Json, Json]:
    with (
        gzip.open(folder / "structure-definitions.json.gz") as structures,
        gzip.open(folder / "terminology.json.gz") as terminology,
    ):
        return json.load(structures), json.load(terminology)


def main(argv: list[str]) -> None:
    folder = Path(argv[1]) if len(argv) > 1 else DEFINITIONS
    table = derive(*load(folder))
    OUTPUT.write_text(render(table), encoding="utf-8")
    bound = sum(isinstance(s, list) for m in table["types"].values() for s in m.values())
    print(
        f"{OUTPUT.relative_to(ROOT)}: {OUTPUT.stat().st_size} bytes, {len(table['types'])}"
        f" types, {bound} checked elements, {len(table['valueSets'])} value sets enumerated,"
        f" {len(table['notEnumerable'])} not enumerable"
    )
    for url, why in table["notEnumerable"].items():
        print(f"  not enumerable: {url}: {why}")


if __name__ == "__main__":
    main(sys.argv)
