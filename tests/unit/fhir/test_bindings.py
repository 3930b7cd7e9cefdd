import importlib.util
import json
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rempart.fhir import bindings
from rempart.fhir.bindings import check_required_bindings

ROOT = Path(__file__).resolve().parents[3]
R4 = ROOT.parent / "shared" / "data" / "fhir-r4"
GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"

# Official R4 examples that really violate a required binding: file -> paths. None do.
KNOWN_VIOLATIONS: dict[str, list[str]] = {}


def paths(resource: dict[str, Any]) -> list[str | None]:
    return [issue.path for issue in check_required_bindings(resource)]


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **fields}


def observation(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **fields}


# --- codes -------------------------------------------------------------------------


def test_a_bad_gender_is_reported_without_echoing_it() -> None:
    [issue] = check_required_bindings(patient(gender="<script>"))
    assert issue.path == "Patient.gender"
    assert issue.message == f"code is not in the required value set {GENDER}"
    assert issue.severity == "error"


@pytest.mark.parametrize("gender", ["male", "female", "other", "unknown"])
def test_every_gender_of_the_value_set_passes(gender: str) -> None:
    assert paths(patient(gender=gender)) == []


@pytest.mark.parametrize("gender", ["Male", "MALE", "male ", " male", "m", ""])
def test_codes_are_compared_exactly(gender: str) -> None:
    assert paths(patient(gender=gender)) == ["Patient.gender"]


def test_a_bad_observation_status() -> None:
    assert paths(observation(status="banana")) == ["Observation.status"]
    assert paths(observation(status="amended")) == []


def test_nested_datatypes_and_choice_types() -> None:
    resource = patient(
        telecom=[{"system": "pager", "value": "1"}, {"system": "telepathy"}],
        name=[{"use": "official"}, {"use": "nick"}],
        address=[{"use": "home", "type": "both"}, {"type": "castle"}],
    )
    assert paths(resource) == [
        "Patient.telecom[1].system",
        "Patient.name[1].use",
        "Patient.address[1].type",
    ]
    bad = observation(valueQuantity={"value": 1, "comparator": "~"})
    assert paths(bad) == ["Observation.valueQuantity.comparator"]
    assert paths(observation(valueQuantity={"value": 1, "comparator": ">="})) == []


def test_backbone_elements() -> None:
    resource = observation(
        component=[{"code": {"text": "a"}}, {"valueQuantity": {"comparator": "x"}}]
    )
    assert paths(resource) == ["Observation.component[1].valueQuantity.comparator"]
    assert paths(patient(contact=[{"gender": "f"}])) == ["Patient.contact[0].gender"]


def test_a_list_of_codes_is_checked_item_by_item() -> None:
    timing = {"repeat": {"dayOfWeek": ["mon", "Tue", "wed"], "periodUnit": "d"}}
    resource = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [{"timing": timing}],
    }
    assert paths(resource) == ["MedicationRequest.dosageInstruction[0].timing.repeat.dayOfWeek[1]"]


def test_a_null_in_a_list_of_codes_is_an_absent_value() -> None:
    # FHIR JSON §2.6.2.3: null holds the place of a value that only has extensions.
    timing = {"repeat": {"dayOfWeek": [None, "mon"], "_dayOfWeek": [{"id": "a"}, None]}}
    assert (
        paths({"resourceType": "MedicationRequest", "dosageInstruction": [{"timing": timing}]})
        == []
    )


def test_a_content_reference_is_followed() -> None:
    # Questionnaire.item.item is defined as #Questionnaire.item.
    inner = {"linkId": "2", "type": "essay"}
    resource = {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [
            {"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"}, inner]}
        ],
    }
    assert paths(resource) == ["Questionnaire.item[0].item[1].type"]


def test_an_abstract_code_is_not_allowed() -> None:
    # 'question' is notSelectable in http://hl7.org/fhir/item-type (R4 §4.8.7).
    resource = {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [{"linkId": "1", "type": "question"}],
    }
    assert paths(resource) == ["Questionnaire.item[0].type"]


# --- resources inside resources -----------------------------------------------------


def test_bundle_entries() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(gender="x"), "request": {"method": "PATCH", "url": "Patient"}},
            {"resource": patient(gender="male"), "request": {"method": "FETCH", "url": "P"}},
        ],
    }
    assert paths(bundle) == [
        "Bundle.entry[0].resource.gender",
        "Bundle.entry[1].request.method",
    ]
    assert paths({**bundle, "type": "batch-response"}) == paths(bundle)
    assert paths({**bundle, "type": "Transaction"})[0] == "Bundle.type"


def test_contained_resources() -> None:
    resource = observation(contained=[patient(id="p", gender="male"), patient(id="q", gender="M")])
    assert paths(resource) == ["Observation.contained[1].gender"]


def test_parameters_resources_and_values() -> None:
    resource = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "a", "resource": patient(gender="nope")},
            {"name": "b", "part": [{"name": "c", "valueContactPoint": {"system": "nope"}}]},
        ],
    }
    assert paths(resource) == [
        "Parameters.parameter[0].resource.gender",
        "Parameters.parameter[1].part[0].valueContactPoint.system",
    ]


def test_an_unknown_or_missing_resource_type_is_left_to_the_validator() -> None:
    assert paths({"resourceType": "Nope", "gender": "x"}) == []
    assert paths({"gender": "x"}) == []
    assert paths({"resourceType": ["Patient"]}) == []
    assert paths(observation(contained=[{"resourceType": "Nope", "status": "x"}, "x"])) == []


# --- extensions ---------------------------------------------------------------------


def test_extensions_are_checked_by_the_type_of_their_value() -> None:
    quantity = {"url": "http://example.org/q", "valueQuantity": {"comparator": "~"}}
    assert paths(patient(extension=[quantity])) == ["Patient.extension[0].valueQuantity.comparator"]
    nested = {"url": "http://example.org/n", "extension": [quantity]}
    assert paths(patient(modifierExtension=[nested])) == [
        "Patient.modifierExtension[0].extension[0].valueQuantity.comparator"
    ]


def test_extensions_inside_unchecked_elements_and_primitives() -> None:
    address = {"url": "http://example.org/a", "valueAddress": {"use": "nope"}}
    coding = {"system": "http://loinc.org", "code": "1-8", "extension": [address]}
    resource = observation(code={"coding": [coding]}, _status={"extension": [address]})
    assert paths(resource) == [
        "Observation.code.coding[0].extension[0].valueAddress.use",
        "Observation._status.extension[0].valueAddress.use",
    ]
    given = {"url": "http://example.org/g", "valueHumanName": {"use": "nope"}}
    name = {"given": ["A", "B"], "_given": [None, {"extension": [given]}]}
    assert paths(patient(name=[name])) == [
        "Patient.name[0]._given[1].extension[0].valueHumanName.use"
    ]


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    extension: dict[str, Any] = {"url": "u", "valueQuantity": {"comparator": "~"}}
    for _ in range(5000):
        extension = {"url": "u", "extension": [extension]}
    [path] = paths(patient(extension=[extension]))
    assert path is not None and path.endswith("extension[0].valueQuantity.comparator")


# --- CodeableConcept and Coding -----------------------------------------------------

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def condition(clinical: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "subject": {"reference": "P/1"},
        "clinicalStatus": clinical,
    }


@pytest.mark.parametrize(
    "clinical",
    [
        {"coding": [{"system": CLINICAL, "code": "active"}]},
        {
            "coding": [
                {"system": "http://x", "code": "a"},
                {"system": CLINICAL, "code": "remission"},
            ]
        },
        {"coding": [{"system": CLINICAL, "code": "nope"}, {"system": CLINICAL, "code": "active"}]},
        {"coding": [{"system": CLINICAL, "code": "active"}], "text": "Active"},
    ],
)
def test_a_concept_with_one_coding_from_the_value_set_passes(clinical: dict[str, Any]) -> None:
    assert paths(condition(clinical)) == []


@pytest.mark.parametrize(
    "clinical",
    [
        {"text": "active"},
        {"coding": []},
        {"coding": [{"code": "active"}]},
        {"coding": [{"system": CLINICAL}]},
        {"coding": [{"system": CLINICAL, "code": "Active"}]},
        {"coding": [{"system": "http://example.org", "code": "active"}]},
        {"coding": [{"system": CLINICAL + "/", "code": "active"}]},
        {"coding": ["active"]},
        {"coding": {"system": CLINICAL, "code": "active"}},
    ],
)
def test_a_concept_without_a_coding_from_the_value_set_fails(clinical: dict[str, Any]) -> None:
    [issue] = check_required_bindings(condition(clinical))
    assert issue.path == "Condition.clinicalStatus"
    assert issue.message == (
        "no coding is from the required value set http://hl7.org/fhir/ValueSet/condition-clinical"
    )


def test_a_bound_concept_is_still_walked_for_extensions() -> None:
    bad = {"url": "http://example.org/q", "valueQuantity": {"comparator": "~"}}
    clinical = {"coding": [{"system": CLINICAL, "code": "active", "extension": [bad]}]}
    assert paths(condition(clinical)) == [
        "Condition.clinicalStatus.coding[0].extension[0].valueQuantity.comparator"
    ]


def test_a_bound_coding_needs_a_system_and_code_of_the_value_set() -> None:
    # R4 has no required binding on a Coding element; the walker supports one anyway.
    systems = {"http://s": frozenset({"a"})}
    spec = bindings._Spec(bindings.CODING, bindings._types()[""], frozenset({"a"}), systems, "V")
    for coding, expected in [
        ({"system": "http://s", "code": "a"}, 0),
        ({"system": "http://s", "code": "b"}, 1),
        ({"system": "http://t", "code": "a"}, 1),
        ({"code": "a"}, 1),
    ]:
        issues: list[Any] = []
        bindings._check(spec, coding, (None, "X", None), "coding", {}, [], issues)
        assert len(issues) == expected, coding


# --- what is not checked ------------------------------------------------------------


def test_value_sets_that_cannot_be_enumerated_are_not_checked() -> None:
    table = json.loads(files("rempart.fhir.tables").joinpath("required_bindings.json").read_text())
    assert "http://hl7.org/fhir/ValueSet/mimetypes" in table["notEnumerable"]
    assert "http://hl7.org/fhir/ValueSet/currencies" in table["notEnumerable"]
    assert paths(patient(photo=[{"contentType": "any/thing"}])) == []
    resource = {"resourceType": "Invoice", "status": "draft", "totalNet": {"currency": "XXX"}}
    assert paths(resource) == []


def test_other_strengths_are_not_checked() -> None:
    # Patient.maritalStatus is extensible, Patient.language preferred.
    assert paths(patient(maritalStatus={"text": "it's complicated"}, language="xx")) == []


def test_non_string_codes_are_reported() -> None:
    assert paths(patient(gender=1)) == ["Patient.gender"]
    assert paths(patient(gender={"code": "male"})) == ["Patient.gender"]


def test_the_table_is_read_once() -> None:
    assert bindings._types() is bindings._types()


# --- the official examples and the derivation ---------------------------------------


def test_the_official_examples_pass() -> None:
    folder = R4 / "examples"
    if not folder.is_dir():
        pytest.skip(f"the official R4 examples are not at {folder}")
    found = {}
    for file in sorted(folder.glob("*.json")):
        issues = paths(json.loads(file.read_text(encoding="utf-8")))
        if issues:
            found[file.name] = issues
    assert len(list(folder.glob("*.json"))) == 402
    assert found == KNOWN_VIOLATIONS


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "derive", ROOT / "scripts" / "derive_fhir_tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_table_is_what_the_generator_derives() -> None:
    folder = R4 / "definitions"
    if not (folder / "terminology.json.gz").is_file():
        pytest.skip(f"the R4 definitions are not at {folder}")
    generator = _generator()
    expected = generator.render(generator.derive(*generator.load(folder)))
    shipped = files("rempart.fhir.tables").joinpath("required_bindings.json").read_text("utf-8")
    assert shipped == expected, "run scripts/derive_fhir_tables.py"


def test_nested_lists_are_not_codes() -> None:
    value: Any = "male"
    for _ in range(5000):
        value = [value]
    assert paths(patient(gender=value)) == ["Patient.gender[0]"]
