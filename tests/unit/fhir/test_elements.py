import copy
import importlib.util
import json
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rempart.errors import Category, RempartError
from rempart.fhir import elements
from rempart.fhir.elements import SUBSETTED, parse_elements, select_elements, summarize

ROOT = Path(__file__).resolve().parents[3]
R4 = ROOT.parent / "shared" / "data" / "fhir-r4"
TEXT = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}


def observation(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"versionId": "2"},
        "text": TEXT,
        "status": "final",
        "category": [{"text": "vital-signs"}],
        "code": {"text": "weight"},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 72, "unit": "kg"},
        "note": [{"text": "after lunch"}],
        **fields,
    }


def tags(resource: dict[str, Any]) -> list[Any]:
    return list(resource.get("meta", {}).get("tag", []))


# --- _summary ------------------------------------------------------------------------


def test_summary_true_keeps_the_summary_elements_and_choices() -> None:
    result = summarize(observation(), "true")
    assert list(result) == [
        "resourceType", "id", "meta", "status", "code", "subject", "valueQuantity"
    ]  # fmt: skip
    assert result["meta"] == {"versionId": "2", "tag": [SUBSETTED]}


def test_summary_true_keeps_mandatory_elements_that_are_not_summary() -> None:
    event = {"resourceType": "AuditEvent", "type": {}, "recorded": "2020", "source": {},
             "agent": [{}], "entity": [{}], "language": "fr"}  # fmt: skip
    # AuditEvent.agent and .source are 1..* and 1..1 but not isSummary in R4.
    assert set(summarize(event, "true")) == {
        "resourceType", "type", "recorded", "source", "agent", "meta"
    }  # fmt: skip


def test_summary_text_keeps_text_id_meta_and_mandatory_elements() -> None:
    result = summarize(observation(), "text")
    assert list(result) == ["resourceType", "id", "meta", "text", "status", "code"]
    assert tags(result) == [SUBSETTED]


def test_summary_data_removes_only_the_text() -> None:
    result = summarize(observation(), "data")
    expected = {key: value for key, value in observation().items() if key != "text"}
    assert {key: value for key, value in result.items() if key != "meta"} == {
        key: value for key, value in expected.items() if key != "meta"
    }
    assert tags(result) == [SUBSETTED]


def test_a_resource_that_lost_nothing_is_not_tagged() -> None:
    bare = {"resourceType": "Observation", "status": "final", "code": {}}
    assert summarize(bare, "data") == bare
    assert summarize(bare, "true") == bare
    assert summarize(observation(), "false") == observation()


def test_summary_of_an_unknown_type_keeps_the_resource_elements() -> None:
    assert summarize({"resourceType": "Nope", "id": "1", "x": 1}, "true") == {
        "resourceType": "Nope", "id": "1", "meta": {"tag": [SUBSETTED]}
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["count", "TRUE", "", "true ", "<b>"])
def test_other_summary_modes_are_refused_without_echo(mode: str) -> None:
    with pytest.raises(RempartError) as caught:
        summarize(observation(), mode)
    assert caught.value.category is Category.INCORRECT
    assert caught.value.message == "_summary must be true, text, data or false"


def test_the_tag_is_added_once_beside_the_other_tags() -> None:
    other = {"system": "http://example.org", "code": "x"}
    resource = observation(meta={"tag": [other, dict(SUBSETTED)]})
    assert tags(summarize(resource, "true")) == [other, SUBSETTED]
    resource = observation(meta={"tag": [other]})
    assert tags(summarize(resource, "text")) == [other, SUBSETTED]


def test_the_input_is_never_changed() -> None:
    resource = observation(meta={"tag": [{"code": "x"}]})
    before = copy.deepcopy(resource)
    for mode in ("true", "text", "data", "false"):
        result = summarize(resource, mode)
        assert result is not resource
    select_elements(resource, ["subject"])
    assert resource == before


# --- _elements -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["value", "value[x]"])
def test_a_choice_is_selected_by_its_name(name: str) -> None:
    result = select_elements(observation(), [name])
    assert list(result) == ["resourceType", "id", "meta", "status", "code", "valueQuantity"]
    assert tags(result) == [SUBSETTED]


def test_listed_elements_and_their_primitive_extensions_are_kept() -> None:
    patient = {"resourceType": "Patient", "gender": "male", "_gender": {"id": "g"},
               "name": [{"family": "Chalmers"}], "contact": [{}]}  # fmt: skip
    assert select_elements(patient, ["gender", "nope", "Patient"]) == {
        "resourceType": "Patient", "meta": {"tag": [SUBSETTED]},
        "gender": "male", "_gender": {"id": "g"},
    }  # fmt: skip


def test_selecting_everything_does_not_tag() -> None:
    patient = {"resourceType": "Patient", "id": "1", "name": []}
    assert select_elements(patient, ["name"]) == patient


def test_parse_elements() -> None:
    assert parse_elements("name, birthDate ,value[x],name") == ("name", "birthDate", "value[x]")


@pytest.mark.parametrize(
    "value", ["", "name,,gender", "Patient.name", "<script>", "na me", "1st", "value[y]", "é"]
)
def test_bad_elements_are_refused_without_echo(value: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_elements(value)
    assert caught.value.category is Category.INCORRECT
    assert caught.value.message == "_elements must be a comma-separated list of element names"


# --- the official examples and the derivation ---------------------------------------


def _example(name: str) -> dict[str, Any]:
    path = R4 / "examples" / name
    if not path.is_file():
        pytest.skip(f"the official R4 examples are not at {path.parent}")
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def test_the_summary_of_an_official_patient() -> None:
    patient = _example("Patient-f001.json")
    result = summarize(patient, "true")
    # Patient.name, birthDate, deceased[x] are isSummary in R4; contact etc. are not.
    for kept in ("id", "identifier", "active", "name", "telecom", "gender", "birthDate",
                 "deceasedBoolean", "address", "managingOrganization"):  # fmt: skip
        assert result[kept] == patient[kept]
    for dropped in ("text", "maritalStatus", "multipleBirthBoolean", "contact", "communication"):
        assert dropped in patient and dropped not in result
    assert tags(result) == [SUBSETTED]


def test_the_elements_of_an_official_observation() -> None:
    result = select_elements(_example("Observation-example.json"), parse_elements("value"))
    assert set(result) == {"resourceType", "id", "meta", "status", "code", "valueQuantity"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "derive_summary_elements", ROOT / "scripts" / "derive_summary_elements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_table_is_what_the_generator_derives() -> None:
    folder = R4 / "definitions"
    if not (folder / "structure-definitions.json.gz").is_file():
        pytest.skip(f"the R4 definitions are not at {folder}")
    generator = _generator()
    expected = generator.render(generator.derive(generator.load(folder)))
    shipped = files("rempart.fhir.tables").joinpath("summary_elements.json").read_text("utf-8")
    assert shipped == expected, "run scripts/derive_summary_elements.py"


def test_the_table_knows_inherited_and_mandatory_elements() -> None:
    table = elements._table()
    assert {"id", "meta", "implicitRules"} <= table["Patient"].summary
    assert "language" not in table["Patient"].summary
    assert table["Observation"].mandatory == {"status", "code"}
    assert table["Observation"].choices == ("effective", "value")
    assert elements._table() is table
