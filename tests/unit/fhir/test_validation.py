import pytest

from rempart.errors import RempartError
from rempart.fhir.validation import RESOURCE_TYPES, FhirkitValidator, valid_id

validator = FhirkitValidator()


def test_all_r4_resource_types_are_known() -> None:
    assert len(RESOURCE_TYPES) == 146
    assert {"Patient", "Observation", "Bundle", "Parameters", "AuditEvent"} <= RESOURCE_TYPES


@pytest.mark.parametrize("value", ["a", "A-b.9", "x" * 64])
def test_valid_ids(value: str) -> None:
    assert valid_id(value)


@pytest.mark.parametrize("value", ["", "a b", "x" * 65, "é", "a/b", "a_b", None, 7])
def test_invalid_ids(value: object) -> None:
    assert not valid_id(value)


def test_decimals_keep_their_precision_both_ways() -> None:
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        b'"valueQuantity":{"value":72.50}}'
    )
    assert b"72.50" in validator.dump(validator.load(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{bad",
        b"[]",
        b'{"resourceType":"Nope"}',
        b'{"resourceType":"Patient","active":"yes"}',
        b'{"resourceType":"Patient","unknown":1}',
        b'{"resourceType":"Patient","id":"a b"}',
        b'{"resourceType":"Patient","birthDate":"2024-13-01"}',
        b'{"resourceType":"Observation"}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_invalid_input_is_a_400_with_issues(raw: bytes) -> None:
    with pytest.raises(RempartError) as caught:
        validator.load(raw)
    assert caught.value.category.status == 400


def test_messages_do_not_quote_the_input() -> None:
    with pytest.raises(RempartError) as caught:
        validator.load(b'{"resourceType":"Patient","birthDate":"<b>SECRET</b>"}')
    text = " ".join(i.message for i in caught.value.issues)
    assert "SECRET" not in text and "birthDate" in (caught.value.issues[0].path or "")


@pytest.mark.parametrize(
    "text", [b"0.00000010", b"0.0000000", b"72.50", b"1000", b"-3.14159265358979323846"]
)
def test_decimals_are_written_back_exactly(text: bytes) -> None:
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        b'"valueQuantity":{"value":' + text + b"}}"
    )
    assert b'"value":' + text + b"}" in validator.dump(validator.load(raw))


def test_unknown_elements_and_values_are_not_echoed() -> None:
    raw = b'{"resourceType":"Patient","SECRETNAME":1,"multipleBirthInteger":98765432198765}'
    with pytest.raises(RempartError) as caught:
        validator.load(raw)
    text = " ".join(f"{i.message} {i.path}" for i in caught.value.issues)
    assert "SECRETNAME" not in text and "98765432198765" not in text
    assert {i.path for i in caught.value.issues} == {"Patient", "Patient.multipleBirthInteger"}


def test_dotted_unknown_keys_are_not_echoed() -> None:
    with pytest.raises(RempartError) as caught:
        validator.load(b'{"resourceType":"Patient","<b>.EVILMARKER":1}')
    assert all(
        "<b>" not in (i.path or "") and "EVIL" not in (i.path or "") for i in caught.value.issues
    )
