import importlib.util
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import pytest

from rempart.fhir import compartments
from rempart.fhir.compartments import compartment_types, members, params_for
from rempart.fhir.search.parameters import parameters_for, resource_types

ROOT = Path(__file__).resolve().parents[3]
DEFINITIONS = ROOT.parent / "shared" / "data" / "fhir-r4" / "definitions"


def test_the_five_compartment_types() -> None:
    expected = ("Device", "Encounter", "Patient", "Practitioner", "RelatedPerson")
    assert compartment_types() == expected


def test_an_observation_is_in_the_patient_compartment_by_subject_and_performer() -> None:
    assert params_for("Patient", "Observation") == ("subject", "performer")


def test_a_patient_is_in_another_patients_compartment_by_link() -> None:
    assert params_for("Patient", "Patient") == ("link",)


def test_the_encounter_compartment() -> None:
    assert params_for("Encounter", "Observation") == ("encounter",)
    assert params_for("Encounter", "MedicationAdministration") == ("context",)
    # The focal Encounter is only a member through {def}, which is not a parameter.
    assert "Encounter" not in members("Encounter")


def test_resources_without_parameters_are_not_members() -> None:
    assert "Account" not in members("Encounter")
    assert params_for("Patient", "Organization") == ()
    assert len(members("Patient")) == 66


def test_unknown_compartments_and_types_are_empty() -> None:
    assert dict(members("Organization")) == {}
    assert params_for("Nope", "Observation") == ()
    assert params_for("Patient", "Nope") == ()


def test_no_marker_is_left_and_every_parameter_is_a_search_parameter() -> None:
    known = set(resource_types())
    for compartment in compartment_types():
        for type_, params in members(compartment).items():
            assert type_ in known
            assert params
            for code in params:
                assert not code.startswith("{")
                assert code in parameters_for(type_), f"{compartment}/{type_}.{code}"


def test_the_table_cannot_be_changed_by_a_caller() -> None:
    with pytest.raises(TypeError):
        members("Patient")["Observation"] = ("x",)  # type: ignore[index]


def test_the_table_is_read_once() -> None:
    assert compartments._table() is compartments._table()


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "derive_compartments", ROOT / "scripts" / "derive_compartments.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_table_is_what_the_generator_derives() -> None:
    if not (DEFINITIONS / "compartment-definitions.json").is_file():
        pytest.skip(f"the R4 definitions are not at {DEFINITIONS}")
    generator = _generator()
    expected = generator.render(generator.derive(generator.load(DEFINITIONS)))
    shipped = files("rempart.fhir.tables").joinpath("compartments.json").read_text("utf-8")
    assert shipped == expected, "run scripts/derive_compartments.py"
