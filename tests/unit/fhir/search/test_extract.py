"""Search parameter extraction (FHIR R4 §3.1.1.5), against fhirpathpy and by hand."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rempart.fhir.search.extract import (
    DateValue,
    Extractor,
    IndexValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    build_extractors,
    engine_select,
    extract,
    extract_with,
    extractors_for,
    normalize,
)
from rempart.fhir.search.fhirpath_compile import compile_branch, split_union
from rempart.fhir.search.parameters import parameters_for

EXAMPLES = Path(__file__).resolve().parents[5] / "shared" / "data" / "fhir-r4" / "examples"


def _examples() -> list[dict[str, Any]]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"the official FHIR R4 examples are not in {EXAMPLES}")
    return [
        json.loads(path.read_text("utf-8"), parse_float=Decimal)
        for path in sorted(EXAMPLES.glob("*.json"))
    ]


def _canonical(nodes: list[Any]) -> list[str]:
    return sorted({json.dumps(node, sort_keys=True, default=str) for node in nodes})


def _pairs(extractor: Extractor) -> Iterator[tuple[str, str, str | None]]:
    """(branch, fhirpathpy expression, component) to compare, for each part compiled."""
    for branch in split_union(extractor.param.expression):
        if not extractor.composite:
            yield branch, branch, None
            continue
        for part in extractor.param.components:
            yield branch, f"({branch}).select({part.expression})", part.expression


def _compiled_nodes(resource: dict[str, Any], branch: str, component: str | None) -> list[Any]:
    step, path = compile_branch(branch, None)
    nodes = step([resource])
    if component is None:
        return nodes
    return [n for b in split_union(component) for n in compile_branch(b, path)[0](nodes)]


def test_compiled_extractors_select_what_fhirpathpy_selects() -> None:
    examples = _examples()
    compared = 0
    for resource in examples:
        for extractor in extractors_for(resource["resourceType"]):
            if not extractor.compiled:
                continue
            for branch, expression, component in _pairs(extractor):
                expected = engine_select(expression)(resource)
                got = _compiled_nodes(resource, branch, component)
                where = f"{resource['resourceType']}/{resource.get('id')} {expression}"
                assert _canonical(got) == _canonical(expected), where
                compared += bool(got)
    assert compared > 1000  # the examples do exercise the extractors


def _observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}], "text": "W"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-05",
        "valueQuantity": {
            "value": Decimal("72.50"),
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


def _of(values: list[IndexValue], param: str) -> list[IndexValue]:
    return [value for value in values if value.param == param]


def _micros(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1_000_000


def test_patient_family_and_birthdate() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Dupré", "given": ["Zoé"]}],
        "birthDate": "1980-02",
    }
    values = extract(patient)
    assert _of(values, "family") == [StringValue("family", "dupre", "Dupré")]
    start, end = _micros(1980, 2, 1), _micros(1980, 3, 1)
    assert _of(values, "birthdate") == [DateValue("birthdate", start, end)]
    assert StringValue("name", "zoe", "Zoé") in _of(values, "name")


def test_observation_code_subject_date_and_quantity() -> None:
    values = extract(_observation())
    code = TokenValue("code", "http://loinc.org", "29463-7", "w")  # text: CodeableConcept.text
    assert _of(values, "code") == [code]
    assert _of(values, "subject") == [ReferenceValue("subject", "Patient", "p1", None)]
    assert _of(values, "patient") == [ReferenceValue("patient", "Patient", "p1", None)]
    day = DateValue("date", _micros(2024, 3, 5), _micros(2024, 3, 6))
    assert _of(values, "date") == [day]
    quantity = _of(values, "value-quantity")
    unit = ("http://unitsofmeasure.org", "kg", "kg")
    assert quantity == [QuantityValue("value-quantity", Decimal("72.50"), Decimal("72.50"), *unit)]
    assert isinstance(quantity[0], QuantityValue) and isinstance(quantity[0].low, Decimal)


def test_reference_to_another_type_is_not_a_patient() -> None:
    observation = {**_observation(), "subject": {"reference": "Group/g1"}}
    assert _of(extract(observation), "patient") == []


def test_encounter_date_from_period_with_precision() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "period": {"start": "2024-03-05T10:00:00+01:00", "end": "2024-03-05T11:30"},
    }
    [date] = _of(extract(encounter), "date")
    assert date == DateValue("date", _micros(2024, 3, 5, 9), _micros(2024, 3, 5, 11, 31))


def test_open_period_runs_forever() -> None:
    encounter = {"resourceType": "Encounter", "period": {"start": "2024"}}
    [date] = _of(extract(encounter), "date")
    assert isinstance(date, DateValue)
    assert date.start == _micros(2024, 1, 1) and date.end > _micros(9999, 1, 1)


def test_string_normalization_removes_accents_and_case() -> None:
    assert normalize("ÉLODIE Çé ñ") == "elodie ce n"
    assert normalize("Straße") == "strasse"


def test_invalid_date_is_not_indexed() -> None:
    patient = {"resourceType": "Patient", "birthDate": "yesterday"}
    assert _of(extract(patient), "birthdate") == []


def test_every_parameter_but_a_few_is_indexed() -> None:
    assert "family" in parameters_for("Patient")
    _, skipped = build_extractors("Location", compiled=True)
    assert set(skipped) == {"near"}


def test_extraction_speed_compiled_and_fhirpathpy(capsys: pytest.CaptureFixture[str]) -> None:
    examples = _examples()
    timings = {}
    for compiled in (True, False):
        extractors = {
            type_: build_extractors(type_, compiled=compiled)[0]
            for type_ in {resource["resourceType"] for resource in examples}
        }
        start = time.perf_counter()
        results = [extract_with(r, extractors[r["resourceType"]]) for r in examples]
        timings[compiled] = (time.perf_counter() - start) / len(examples) * 1e6
        assert sum(map(len, results)) > len(examples)
    with capsys.disabled():
        print(
            f"\nextract, {len(examples)} official examples: {timings[True]:.0f} µs/resource "
            f"compiled, {timings[False]:.0f} µs/resource with fhirpathpy alone"
        )


def test_fhirpathpy_fallbacks_deceased_and_questionnaire_subject() -> None:
    patient = {"resourceType": "Patient", "deceasedDateTime": "2020-01-01"}
    assert _of(extract(patient), "deceased") == [TokenValue("deceased", None, "true")]
    subject = "http://hl7.org/fhir/StructureDefinition/questionnaireresponse-isSubject"
    item = {
        "linkId": "1",
        "extension": [{"url": subject, "valueBoolean": True}],
        "answer": [{"valueReference": {"reference": "Patient/x"}}],
    }
    response = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [item]}
    expected = [ReferenceValue("item-subject", "Patient", "x", None)]
    assert _of(extract(response), "item-subject") == expected
