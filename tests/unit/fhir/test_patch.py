"""JSON Patch (RFC 6902) and FHIRPath Patch (FHIR R4 fhirpatch.html) on resources.

The FHIRPath Patch cases follow the official R4 test cases
(FHIR/fhir-test-cases, r4/patch/fhir-patch-tests.xml), written here in JSON.
"""

from __future__ import annotations

import contextlib
import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.errors import Category, RempartError
from rempart.fhir.json_patch import apply_json_patch
from rempart.fhir.patch import apply_fhirpath_patch

SECRET = "s3cr3t-caller-value"


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "example",
        "identifier": [
            {"system": "http://example.org", "value": "value 1"},
            {"system": "http://example.org", "value": "value 2"},
            {"system": "urn:oid:1.2.3", "value": "value 3"},
        ],
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "birthDate": "1974-12-25",
        "contact": [{"name": {"text": "a name"}, "gender": "male"}],
    }


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": Decimal("72.50"), "unit": "kg"},
    }


def operation(kind: str, path: str, **parts: dict[str, Any]) -> dict[str, Any]:
    """One ``operation`` parameter; each keyword is a part (name -> its value[x] member)."""
    listed = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    listed += [{"name": name, **part} for name, part in parts.items()]
    return {"name": "operation", "part": listed}


def params(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def fails(category: Category, call: Any, *args: Any) -> RempartError:
    with pytest.raises(RempartError) as caught:
        call(*args)
    assert caught.value.category is category
    assert SECRET not in caught.value.message
    return caught.value


# --- JSON Patch -----------------------------------------------------------------------


def test_json_patch_applies_operations_in_order() -> None:
    result = apply_json_patch(
        patient(),
        [
            {"op": "replace", "path": "/birthDate", "value": "1930-01-01"},
            {"op": "add", "path": "/name/0/given/-", "value": "Jim"},
            {"op": "remove", "path": "/contact"},
            {"op": "test", "path": "/identifier/0/value", "value": "value 1"},
            {"op": "move", "from": "/identifier/2", "path": "/identifier/0"},
            {"op": "copy", "from": "/id", "path": "/language"},
        ],
    )
    assert result["birthDate"] == "1930-01-01"
    assert result["name"][0]["given"] == ["Peter", "James", "Jim"]
    assert "contact" not in result
    assert [i["value"] for i in result["identifier"]] == ["value 3", "value 1", "value 2"]
    assert result["language"] == "example"


def test_json_patch_does_not_mutate_its_arguments() -> None:
    resource, patch = patient(), [{"op": "add", "path": "/name/-", "value": {"family": "X"}}]
    before, patch_before = copy.deepcopy(resource), copy.deepcopy(patch)
    result = apply_json_patch(resource, patch)
    result["name"][1]["family"] = "changed"
    assert resource == before
    assert patch == patch_before


LOW = Decimal("1.10")


def test_json_patch_keeps_decimals() -> None:
    result = apply_json_patch(
        observation(),
        [
            {"op": "test", "path": "/valueQuantity/value", "value": Decimal("72.50")},
            {"op": "add", "path": "/valueQuantity/comparator", "value": "<"},
            {"op": "add", "path": "/referenceRange", "value": [{"low": {"value": LOW}}]},
        ],
    )
    kept = result["valueQuantity"]["value"]
    assert isinstance(kept, Decimal)
    assert str(kept) == "72.50"
    assert str(result["referenceRange"][0]["low"]["value"]) == "1.10"


def test_json_patch_test_failure_is_unprocessable() -> None:
    error = fails(
        Category.UNPROCESSABLE,
        apply_json_patch,
        patient(),
        [
            {"op": "add", "path": "/gender", "value": "male"},
            {"op": "test", "path": "/birthDate", "value": SECRET},
        ],
    )
    assert error.message == "operation 1: test failed"


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "remove", "path": "/deceasedBoolean"}],
        [{"op": "replace", "path": "/name/7/family", "value": SECRET}],
        [{"op": "add", "path": "/identifier/9", "value": {}}],
        [{"op": "add", "path": "/birthDate/x", "value": 1}],
        [{"op": "move", "from": f"/{SECRET}", "path": "/x"}],
        [{"op": "remove", "path": ""}],
        [{"op": "replace", "path": "/resourceType", "value": "Practitioner"}],
        [{"op": "replace", "path": "", "value": [SECRET]}],
    ],
)
def test_json_patch_that_does_not_fit_the_resource_is_unprocessable(patch: Any) -> None:
    fails(Category.UNPROCESSABLE, apply_json_patch, patient(), patch)


@pytest.mark.parametrize(
    "patch",
    [
        {"op": "add", "path": "/x", "value": 1},
        SECRET,
        None,
        [SECRET],
        [{"path": "/x"}],
        [{"op": "frobnicate", "path": "/x"}],
        [{"op": ["add"], "path": "/x"}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": SECRET, "value": 1}],
        [{"op": "add", "path": "/x~2", "value": 1}],
        [{"op": "add", "path": "/x"}],
        [{"op": "move", "path": "/x"}],
        [{"op": "replace", "path": "/name/-", "value": 1}],
    ],
)
def test_malformed_json_patch_is_incorrect(patch: Any) -> None:
    fails(Category.INCORRECT, apply_json_patch, patient(), patch)


# --- FHIRPath Patch: the official cases -------------------------------------------------


def test_replace_primitive() -> None:
    patch = params(operation("replace", "Patient.birthDate", value={"valueDate": "1930-01-01"}))
    assert apply_fhirpath_patch(patient(), patch)["birthDate"] == "1930-01-01"


def test_add_primitive() -> None:
    resource = {"resourceType": "Patient"}
    patch = params(
        operation(
            "add",
            "Patient",
            name={"valueString": "birthDate"},
            value={"valueDate": "1930-01-01"},
        )
    )
    assert apply_fhirpath_patch(resource, patch) == {
        "resourceType": "Patient",
        "birthDate": "1930-01-01",
    }


def test_add_complex_value() -> None:
    patch = params(
        operation(
            "add",
            "Patient",
            name={"valueString": "maritalStatus"},
            value={"valueCodeableConcept": {"text": "married"}},
        )
    )
    assert apply_fhirpath_patch(patient(), patch)["maritalStatus"] == {"text": "married"}


def test_add_anonymous_type_from_nested_parts_becomes_a_list() -> None:
    # Patient.contact repeats, so the one new contact is wrapped in an array, and so
    # is its telecom (ContactPoint 0..*), given as a single nested part.
    value = {
        "part": [
            {"name": "name", "valueHumanName": {"text": "a name"}},
            {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "1"}},
            {"name": "gender", "valueCode": "female"},
        ]
    }
    resource = {"resourceType": "Patient"}
    result = apply_fhirpath_patch(
        resource, params(operation("add", "Patient", name={"valueString": "contact"}, value=value))
    )
    assert result["contact"] == [
        {
            "name": {"text": "a name"},
            "telecom": [{"system": "phone", "value": "1"}],
            "gender": "female",
        }
    ]


def test_add_to_an_existing_list_appends() -> None:
    patch = params(
        operation(
            "add",
            "Patient",
            name={"valueString": "identifier"},
            value={"valueIdentifier": {"system": "http://example.org", "value": "value 4"}},
        )
    )
    result = apply_fhirpath_patch(patient(), patch)
    assert [i["value"] for i in result["identifier"]] == [
        "value 1",
        "value 2",
        "value 3",
        "value 4",
    ]


def test_add_nested_primitive_then_a_second_contact() -> None:
    patch = params(
        operation(
            "add",
            "Patient.contact[0]",
            name={"valueString": "relationship"},
            value={"valueCodeableConcept": {"text": "partner"}},
        ),
        operation(
            "add",
            "Patient",
            name={"valueString": "contact"},
            value={"part": [{"name": "gender", "valueCode": "male"}]},
        ),
    )
    result = apply_fhirpath_patch(patient(), patch)
    # relationship is 0..* in R4, so even a single CodeableConcept becomes an array.
    assert result["contact"][0]["relationship"] == [{"text": "partner"}]
    assert result["contact"][1] == {"gender": "male"}


def test_add_existing_single_element_is_unprocessable() -> None:
    patch = params(
        operation("add", "Patient", name={"valueString": "birthDate"}, value={"valueDate": "x"})
    )
    fails(Category.UNPROCESSABLE, apply_fhirpath_patch, patient(), patch)


@pytest.mark.parametrize(("index", "expected"), [(0, ["new", "1", "2"]), (1, ["1", "new", "2"])])
def test_insert_into_a_list(index: int, expected: list[str]) -> None:
    resource = {"resourceType": "Patient", "identifier": [{"value": "1"}, {"value": "2"}]}
    patch = params(
        operation(
            "insert",
            "Patient.identifier",
            index={"valueInteger": index},
            value={"valueIdentifier": {"value": "new"}},
        )
    )
    result = apply_fhirpath_patch(resource, patch)
    assert [i["value"] for i in result["identifier"]] == expected


def test_insert_into_an_absent_list_creates_it() -> None:
    patch = params(
        operation(
            "insert",
            "Patient.name[0].prefix",
            index={"valueInteger": 0},
            value={"valueString": "Dr"},
        )
    )
    assert apply_fhirpath_patch(patient(), patch)["name"][0]["prefix"] == ["Dr"]


@pytest.mark.parametrize("index", [4, -1])
def test_insert_index_out_of_range_is_unprocessable(index: int) -> None:
    patch = params(
        operation(
            "insert",
            "Patient.identifier",
            index={"valueInteger": index},
            value={"valueIdentifier": {"value": SECRET}},
        )
    )
    error = fails(Category.UNPROCESSABLE, apply_fhirpath_patch, patient(), patch)
    assert error.message == "operation 0: index out of range"


@pytest.mark.parametrize(
    "path",
    [
        "Patient.identifier[1]",
        "Patient.identifier.where(value='value 2')",
        "Patient.identifier.where(system = 'http://example.org' and value = 'value 2')",
        "Patient.identifier.where(system='http://example.org').last()",
    ],
)
def test_delete_one_identifier(path: str) -> None:
    result = apply_fhirpath_patch(patient(), params(operation("delete", path)))
    assert [i["value"] for i in result["identifier"]] == ["value 1", "value 3"]


def test_delete_primitive_and_complex() -> None:
    patch = params(operation("delete", "Patient.birthDate"), operation("delete", "Patient.name"))
    result = apply_fhirpath_patch(patient(), patch)
    assert "birthDate" not in result
    assert "name" not in result


def test_delete_last_item_removes_the_list_and_emptied_parents() -> None:
    patch = params(
        operation("delete", "Patient.contact[0].gender"),
        operation("delete", "Patient.contact[0].name.text"),
    )
    assert "contact" not in apply_fhirpath_patch(patient(), patch)


def test_delete_of_nothing_is_no_error() -> None:
    patch = params(operation("delete", "Patient.identifier.where(value='nope')"))
    assert apply_fhirpath_patch(patient(), patch) == patient()


def test_replace_nested_and_in_list() -> None:
    patch = params(
        operation("replace", "Patient.contact[0].name.text", value={"valueString": "the name"}),
        operation("replace", "Patient.name.first().given[1]", value={"valueString": "Jim"}),
        operation("replace", "Patient.identifier[0]", value={"valueIdentifier": {"value": "v"}}),
    )
    result = apply_fhirpath_patch(patient(), patch)
    assert result["contact"][0]["name"] == {"text": "the name"}
    assert result["name"][0]["given"] == ["Peter", "Jim"]
    assert result["identifier"][0] == {"value": "v"}


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [(2, 0, ["3", "1", "2"]), (0, 2, ["2", "3", "1"]), (2, 1, ["1", "3", "2"])],
)
def test_move_within_a_list(source: int, destination: int, expected: list[str]) -> None:
    resource = {"resourceType": "Patient", "identifier": [{"value": v} for v in "123"]}
    patch = params(
        operation(
            "move",
            "Patient.identifier",
            source={"valueInteger": source},
            destination={"valueInteger": destination},
        )
    )
    result = apply_fhirpath_patch(resource, patch)
    assert [i["value"] for i in result["identifier"]] == expected


def test_move_index_out_of_range_is_unprocessable() -> None:
    patch = params(
        operation(
            "move",
            "Patient.identifier",
            source={"valueInteger": 3},
            destination={"valueInteger": 0},
        )
    )
    fails(Category.UNPROCESSABLE, apply_fhirpath_patch, patient(), patch)


def test_fhirpath_patch_keeps_decimals() -> None:
    patch = params(
        operation("replace", "Observation.valueQuantity.value", value={"valueDecimal": 80.25}),
        operation(
            "add",
            "Observation",
            name={"valueString": "referenceRange"},
            value={"part": [{"name": "low", "valueQuantity": {"value": Decimal("1.10")}}]},
        ),
    )
    resource = observation()
    result = apply_fhirpath_patch(resource, patch)
    assert result["valueQuantity"]["value"] == Decimal("80.25")
    assert isinstance(result["valueQuantity"]["value"], Decimal)
    assert str(result["referenceRange"][0]["low"]["value"]) == "1.10"
    assert str(resource["valueQuantity"]["value"]) == "72.50"


def test_fhirpath_patch_does_not_mutate_its_arguments() -> None:
    resource = patient()
    patch = params(
        operation(
            "add",
            "Patient",
            name={"valueString": "identifier"},
            value={"valueIdentifier": {"value": "4"}},
        ),
        operation("delete", "Patient.contact[0].name.text"),
        operation(
            "move",
            "Patient.name[0].given",
            source={"valueInteger": 0},
            destination={"valueInteger": 1},
        ),
    )
    before, patch_before = copy.deepcopy(resource), copy.deepcopy(patch)
    result = apply_fhirpath_patch(resource, patch)
    result["identifier"][3]["value"] = "changed"
    assert resource == before
    assert patch == patch_before


# --- FHIRPath Patch: errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters",
    [
        [operation("delete", "Patient.birthDate")],
        {"resourceType": "Patient"},
        {"resourceType": "Parameters", "parameter": {"name": "operation"}},
        params({"name": SECRET, "part": []}),
        params({"name": "operation"}),
        params(operation("frobnicate", "Patient.birthDate")),
        params({"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]}),
        params(operation("delete", "")),
        params(operation("replace", "Patient.birthDate")),
        params(operation("add", "Patient", value={"valueString": "x"})),
        params(operation("add", "Patient", name={"valueString": SECRET}, value={"valueCode": "x"})),
        params(operation("insert", "Patient.identifier", value={"valueString": "x"})),
        params(operation("insert", "Patient.name", index={"valueInteger": True}, value={})),
        params(operation("delete", "Patient.birthDate", extra={"valueString": "x"})),
        params(operation("replace", "Patient.gender", value={"valueCode": "a", "valueUri": "b"})),
        params(operation("replace", "Patient.gender", value={"part": [{"valueCode": "a"}]})),
        params(operation("replace", "Patient.gender", value={"valueDecimal": SECRET})),
    ],
)
def test_malformed_fhirpath_patch_is_incorrect(parameters: Any) -> None:
    fails(Category.INCORRECT, apply_fhirpath_patch, patient(), parameters)


def test_missing_path_names_the_operation() -> None:
    patch = params(
        operation("delete", "Patient.birthDate"),
        {"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]},
    )
    error = fails(Category.INCORRECT, apply_fhirpath_patch, patient(), patch)
    assert error.message == "operation 1: part 'path' is missing"
    assert error.issues[0].path == "Parameters.parameter[1]"


@pytest.mark.parametrize(
    ("kind", "path", "message"),
    [
        ("replace", "Patient.deceasedBoolean", "path matches nothing"),
        ("replace", f"Patient.identifier.where(value='{SECRET}')", "path matches nothing"),
        ("replace", "Patient.identifier.value", "path matches more than one element"),
        ("replace", "Patient.identifier", "path matches more than one element"),
        ("delete", "Patient.identifier", "path matches more than one element"),
        ("replace", "Observation.status", "path must start with the resource type"),
        ("replace", f"Patient.{SECRET}(1)", "unsupported FHIRPath in patch path"),
        ("replace", "Patient.name.ofType(HumanName)", "unsupported FHIRPath in patch path"),
        ("replace", "Patient.identifier.where(value!='x')", "unsupported FHIRPath in patch path"),
        ("replace", "Patient.identifier.where(value='x' or value='y')", "unsupported FHIRPath"),
        ("replace", "Patient.name[0] | Patient.name[1]", "unsupported FHIRPath in patch path"),
        ("replace", "Patient.birthDate + 1", "unsupported FHIRPath in patch path"),
        ("replace", "Patient.name.where(text='\\q')", "unsupported FHIRPath in patch path"),
        ("replace", "Patient", "a patch cannot replace the resource itself"),
        ("delete", "Patient", "a patch cannot delete the resource itself"),
    ],
)
def test_path_errors_are_unprocessable(kind: str, path: str, message: str) -> None:
    patch = params(operation(kind, path, value={"valueString": "x"}))
    error = fails(Category.UNPROCESSABLE, apply_fhirpath_patch, patient(), patch)
    assert error.message.startswith(f"operation 0: {message}")


def test_where_compares_booleans_numbers_and_unescaped_strings() -> None:
    resource = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "phone", "value": "it's", "rank": 1},
            {"system": "email", "value": "x", "rank": 2, "period": {"start": "2020"}},
        ],
        "link": [{"other": {"reference": "Patient/1"}, "type": "seealso"}],
        "communication": [{"language": {"text": "fr"}, "preferred": True}],
    }
    patch = params(
        operation("delete", "Patient.telecom.where(value = 'it\\'s' and rank = 1.0)"),
        operation("delete", "Patient.communication.where(preferred=true)"),
        operation(
            "replace",
            "Patient.telecom.where(period.start='2020').rank",
            value={"valuePositiveInt": 5},
        ),
    )
    result = apply_fhirpath_patch(resource, patch)
    assert result["telecom"] == [
        {"system": "email", "value": "x", "rank": 5, "period": {"start": "2020"}}
    ]
    assert "communication" not in result


# --- Robustness -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
part_names = st.sampled_from(["type", "path", "name", "value", "index", "source", "destination"])
parts = st.fixed_dictionaries(
    {"name": part_names},
    optional={
        "valueCode": st.sampled_from(["add", "insert", "delete", "replace", "move"]) | st.text(),
        "valueString": st.sampled_from(
            ["Patient", "Patient.identifier", "Patient.name[0].given", "Patient.contact.first()"]
        )
        | st.text(max_size=30),
        "valueInteger": st.integers(-3, 6),
        "valueDecimal": json_values,
        "part": st.lists(json_values, max_size=3),
    },
)
operations = st.fixed_dictionaries(
    {"name": st.just("operation"), "part": st.lists(parts, max_size=6)}
)


@settings(max_examples=300, deadline=None)
@given(patch=json_values)
def test_json_patch_garbage_only_raises_rempart_errors(patch: Any) -> None:
    with contextlib.suppress(RempartError):
        apply_json_patch(patient(), patch)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
                "path": st.sampled_from(["", "/", "/name/0", "/name/-", "/id/x", "/a~1b"]),
            },
            optional={"from": st.sampled_from(["/name", "/identifier/9"]), "value": json_values},
        ),
        max_size=4,
    )
)
def test_json_patch_random_operations_only_raise_rempart_errors(ops: list[Any]) -> None:
    try:
        result = apply_json_patch(patient(), ops)
    except RempartError:
        return
    assert result["resourceType"] == "Patient"


@settings(max_examples=500, deadline=None)
@given(
    parameters=json_values
    | st.lists(operations | json_values, max_size=4).map(
        lambda entries: {"resourceType": "Parameters", "parameter": entries}
    )
)
def test_fhirpath_patch_garbage_only_raises_rempart_errors(parameters: Any) -> None:
    resource = patient()
    try:
        result = apply_fhirpath_patch(resource, parameters)
    except RempartError:
        return
    assert result["resourceType"] == "Patient"
    assert resource == patient()
