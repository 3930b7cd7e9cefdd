"""Parsing a search request into a SearchQuery (FHIR R4 §3.1.1)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.errors import Category, RempartError
from rempart.fhir.search.parameters import parameters_for
from rempart.fhir.search.parse import Limits, parse_search
from rempart.fhir.search.query import (
    AnyOf,
    Chain,
    Has,
    IdIn,
    Include,
    InList,
    Missing,
    NumberQ,
    ReferenceQ,
    SearchQuery,
    SortKey,
    StringQ,
    TokenQ,
    Updated,
)
from rempart.fhir.search.query import (
    Test as Criterion,
)

MARKER = "zq7MARKERzq7"
OBS = parameters_for("Observation")
PATIENT = parameters_for("Patient")


def parse(
    *params: tuple[str, str], strict: bool = False, type_: str = "Observation"
) -> SearchQuery:
    return parse_search((type_,), params, strict=strict)


def refused(
    *params: tuple[str, str], strict: bool = False, type_: str = "Observation"
) -> RempartError:
    """The error a bad request raises; it must be a 400 that never repeats the caller."""
    with pytest.raises(RempartError) as caught:
        parse(*params, strict=strict, type_=type_)
    error = caught.value
    assert error.category is Category.INCORRECT
    assert MARKER not in str(error)
    assert all(MARKER not in issue.message for issue in error.issues)
    return error


def only(query: SearchQuery) -> object:
    assert len(query.where) == 1
    return query.where[0]


# --- names and modifiers (§3.1.1.5) --------------------------------------------------


def test_plain_parameter() -> None:
    assert only(parse(("code", "1234-5"))) == Criterion(
        OBS["code"], None, (TokenQ(None, "1234-5"),)
    )


@pytest.mark.parametrize(
    ("key", "modifier"),
    [("name:exact", "exact"), ("name:contains", "contains"), ("family", None)],
)
def test_string_modifiers(key: str, modifier: str | None) -> None:
    node = only(parse((key, "Ève"), type_="Patient"))
    assert isinstance(node, Criterion) and node.modifier == modifier
    assert node.values == (StringQ("eve", "Ève"),)


def test_token_not_modifier() -> None:
    node = only(parse(("code:not", "a,b")))
    assert node == Criterion(OBS["code"], "not", (TokenQ(None, "a"), TokenQ(None, "b")))


@pytest.mark.parametrize(("value", "missing"), [("true", True), ("false", False)])
def test_missing_modifier(value: str, missing: bool) -> None:
    assert only(parse(("value-quantity:missing", value))) == Missing(OBS["value-quantity"], missing)


def test_missing_takes_only_booleans() -> None:
    refused(("code:missing", MARKER))


def test_reference_type_modifier_is_a_typed_reference() -> None:
    node = only(parse(("subject:Patient", "p1,p2")))
    assert node == Criterion(
        OBS["subject"], None, (ReferenceQ("Patient", "p1"), ReferenceQ("Patient", "p2"))
    )


def test_reference_type_modifier_must_be_a_target() -> None:
    refused(("subject:Medication", "p1"))
    refused(("subject:Patient", "Patient/" + MARKER + "/x"))


@pytest.mark.parametrize(
    "key", ["code:exact", "name:below", "value-quantity:not", "date:text", "subject:above"]
)
def test_unsupported_modifier_is_refused(key: str) -> None:
    type_ = "Patient" if key.startswith("name") else "Observation"
    error = refused((key, MARKER), type_=type_)
    assert error.code == "not-supported"
    # lenient handling does not soften a known parameter with a wrong modifier
    with pytest.raises(RempartError):
        parse((key, "x"), type_=type_, strict=False)


def test_unknown_modifier_on_special_parameters_is_refused() -> None:
    assert refused(("_id:exact", "a")).code == "not-supported"
    assert refused(("_lastUpdated:missing", "true")).code == "not-supported"


# --- values: OR within, AND across (§3.1.1.3) ---------------------------------------


def test_commas_or_and_repeats_and() -> None:
    query = parse(("code", "a,b"), ("code", r"c\,d"))
    assert query.where == (
        Criterion(OBS["code"], None, (TokenQ(None, "a"), TokenQ(None, "b"))),
        Criterion(OBS["code"], None, (TokenQ(None, "c,d"),)),
    )


def test_quantity_value_is_typed() -> None:
    node = only(parse(("value-quantity", "ge5.4|http://unitsofmeasure.org|mg")))
    assert isinstance(node, Criterion)
    assert node.values == (
        NumberQ(
            "ge",
            Decimal("5.4"),
            Decimal("5.35"),
            Decimal("5.45"),
            "http://unitsofmeasure.org",
            "mg",
        ),
    )


def test_bad_value_is_refused_even_when_lenient() -> None:
    refused(("value-quantity", "gt" + MARKER))
    refused(("date", "ge" + MARKER))
    refused(("code", "|"))


# --- _id, _lastUpdated, _list ------------------------------------------------------------


def test_id_forms() -> None:
    assert only(parse(("_id", "a,Observation/b"))) == IdIn(("a", "b"))
    assert only(parse(("_id:not", "a"))) == IdIn(("a",), negate=True)
    assert only(parse(("_id:missing", "true"))) == IdIn((), negate=False)
    refused(("_id", "bad id " + MARKER))


def test_last_updated_values() -> None:
    node = only(parse(("_lastUpdated", "ge2024,lt2020")))
    assert isinstance(node, Updated)
    assert [v.prefix for v in node.values] == ["ge", "lt"]


def test_list() -> None:
    assert only(parse(("_list", "l1"))) == InList("l1")


# --- chains (§3.1.1.5.6 "chained parameters") ----------------------------------------


def test_typed_chain() -> None:
    node = only(parse(("subject:Patient.name", "eve")))
    assert node == Chain(
        OBS["subject"], "Patient", Criterion(PATIENT["name"], None, (StringQ("eve", "eve"),))
    )


def test_untyped_chain_is_any_of_the_targets_having_the_parameter() -> None:
    node = only(parse(("subject.name", "eve")))
    assert isinstance(node, AnyOf)
    chains = [chain for chain in node.nodes if isinstance(chain, Chain)]
    assert len(chains) == len(node.nodes)
    assert all(chain.param == OBS["subject"] for chain in chains)
    assert {chain.target for chain in chains} == {"Patient", "Location"}


def test_untyped_chain_with_one_target_is_a_plain_chain() -> None:
    node = only(parse(("subject.birthdate", "2000")))
    assert isinstance(node, Chain) and node.target == "Patient"


def test_chain_of_chains_and_modifier_at_the_end() -> None:
    node = only(parse(("subject:Patient.organization.name:exact", "Acme")))
    assert isinstance(node, Chain)
    inner = node.inner
    assert isinstance(inner, Chain) and inner.target == "Organization"
    assert isinstance(inner.inner, Criterion) and inner.inner.modifier == "exact"


def test_chain_depth_is_bounded() -> None:
    key = "subject:Patient.organization.partof.partof.name"
    with pytest.raises(RempartError):
        parse_search(("Observation",), [(key, "x")], limits=Limits(max_chain_depth=3))


@pytest.mark.parametrize(
    "key", ["code.name", "subject:Medication.code", "subject:Patient.name:below"]
)
def test_bad_chains_are_refused(key: str) -> None:
    refused((key, MARKER))


def test_chain_to_an_unknown_parameter_is_ignored_or_refused() -> None:
    assert parse(("subject.nosuch" + MARKER, "x")).ignored == ("subject.nosuch" + MARKER,)
    assert refused(("subject.nosuch" + MARKER, "x"), strict=True).code == "not-supported"


# --- _has (§3.1.1.5.7 "reverse chaining") ------------------------------------------------


def test_has() -> None:
    node = only(parse(("_has:Observation:patient:code", "1234-5"), type_="Patient"))
    assert node == Has(
        "Observation", OBS["patient"], Criterion(OBS["code"], None, (TokenQ(None, "1234-5"),))
    )


def test_nested_has() -> None:
    key = "_has:Observation:patient:_has:AuditEvent:entity:agent"
    node = only(parse((key, "Practitioner/1"), type_="Patient"))
    assert isinstance(node, Has) and node.source == "Observation"
    assert isinstance(node.inner, Has) and node.inner.source == "AuditEvent"
    assert node.inner.param.code == "entity" and isinstance(node.inner.inner, Criterion)


def test_has_ending_in_a_chain() -> None:
    node = only(parse(("_has:Observation:patient:subject:Patient.name", "eve"), type_="Patient"))
    assert isinstance(node, Has) and isinstance(node.inner, Chain)


@pytest.mark.parametrize(
    "key",
    [
        "_has:Observation:patient",  # no inner parameter
        "_has:Observation:code:status",  # code is not a reference
        "_has:Observation:patient:status",  # patient cannot refer to a Medication
    ],
)
def test_bad_has_is_refused(key: str) -> None:
    refused((key, MARKER), type_="Medication" if key.endswith("patient:status") else "Patient")


def test_has_on_an_unknown_type_is_ignored_or_refused() -> None:
    assert parse(("_has:Nosuch:patient:code", "x"), type_="Patient").ignored
    refused(("_has:Nosuch:patient:code", MARKER), type_="Patient", strict=True)


def test_has_depth_is_bounded() -> None:
    key = ":".join(["_has:Observation:patient"] * 4) + ":code"
    with pytest.raises(RempartError):
        parse((key, "x"), type_="Patient")


# --- unknown parameters: lenient or strict (§3.1.1.2 "handling") --------------------


def test_unknown_parameter_is_ignored_when_lenient() -> None:
    query = parse(("nosuch", MARKER), ("code", "a"))
    assert query.ignored == ("nosuch",)
    assert len(query.where) == 1


def test_unknown_parameter_name_is_reported_sanitized() -> None:
    query = parse(("no<script>such", "x"))
    assert query.ignored == ("no?script?such",)


@pytest.mark.parametrize("key", ["nosuch", "_text", "_filter", "near"])
def test_unknown_parameter_is_refused_when_strict(key: str) -> None:
    error = refused(
        (key, MARKER), strict=True, type_="Location" if key == "near" else "Observation"
    )
    assert error.code == "not-supported"


def test_result_parameters_are_not_criteria() -> None:
    query = parse(("_count", "5"), ("_format", "json"), ("_pretty", "true"), strict=True)
    assert query.where == () and query.ignored == ()


# --- system search (§3.1.1.1) --------------------------------------------------------------


def test_system_search_allows_only_common_parameters() -> None:
    query = parse_search(("Observation", "Patient"), [("_id", "a"), ("_tag", "s|t"), ("code", "x")])
    assert query.where[0] == IdIn(("a",))
    assert isinstance(query.where[1], AnyOf) and len(query.where[1].nodes) == 2
    assert query.ignored == ("code",)


# --- _include / _revinclude (§3.1.1.5.x "including other resources") -------------------


def test_includes() -> None:
    query = parse(
        ("_include", "Observation:subject"),
        ("_include:iterate", "Patient:organization:Organization"),
        ("_revinclude", "Provenance:target"),
        ("_include", "*"),
        ("_revinclude:iterate", "Observation:*"),
    )
    assert query.includes == (
        Include("Observation", "subject", None, reverse=False, iterate=False),
        Include("Patient", "organization", "Organization", reverse=False, iterate=True),
        Include("Provenance", "target", None, reverse=True, iterate=False),
        Include("*", "*", None, reverse=False, iterate=False),
        Include("Observation", "*", None, reverse=True, iterate=True),
    )
    assert query.where == ()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("_include", "Observation"),
        ("_include", "observation:subject"),
        ("_include", "Observation:code"),  # not a reference
        ("_include", "Observation:subject:Medication"),  # not a target
        ("_include", "Observation:subject:Patient:x"),
        ("_include:reverse", "Observation:subject"),
    ],
)
def test_bad_includes_are_refused(key: str, value: str) -> None:
    refused((key, value + MARKER if value.count(":") == 0 else value))


# --- _sort, _count, _total, _summary, _elements (§3.1.1.5.x result parameters) ------


def test_sort_keys_in_order() -> None:
    query = parse(("_sort", "-date, code"), ("_sort", "_id,-_lastUpdated"))
    assert query.sort == (
        SortKey("date", "date", True),
        SortKey("code", "token", False),
        SortKey("_id", "special", False),
        SortKey("_lastUpdated", "special", True),
    )


@pytest.mark.parametrize("value", ["nosuch", "-" + MARKER, "code-value-quantity"])
def test_bad_sort_is_refused(value: str) -> None:
    refused(("_sort", value))


@pytest.mark.parametrize(("value", "count"), [("0", 0), ("7", 7), ("500", 500), ("501", 500)])
def test_count_is_bounded(value: str, count: int) -> None:
    assert parse(("_count", value)).count == count


def test_count_default_and_last_wins() -> None:
    assert parse().count == 50
    assert parse(("_count", "3"), ("_count", "4")).count == 4
    limits = Limits(default_count=10, max_count=20)
    assert parse_search(("Observation",), [], limits=limits).count == 10
    assert parse_search(("Observation",), [("_count", "99")], limits=limits).count == 20


@pytest.mark.parametrize("value", ["-1", "1.5", "", "1e3", "1234567890", MARKER])
def test_bad_count_is_refused(value: str) -> None:
    refused(("_count", value))


@pytest.mark.parametrize("total", ["none", "estimate", "accurate"])
def test_total(total: str) -> None:
    assert parse(("_total", total)).total == total
    assert parse().total == "none"


@pytest.mark.parametrize("summary", ["true", "text", "data", "count", "false"])
def test_summary(summary: str) -> None:
    assert parse(("_summary", summary)).summary == summary
    assert parse().summary is None


@pytest.mark.parametrize("key", ["_total", "_summary"])
def test_bad_choice_is_refused(key: str) -> None:
    refused((key, MARKER))


def test_elements() -> None:
    query = parse(("_elements", "status, code"), ("_elements", "value[x]"))
    assert query.elements == ("status", "code", "value[x]")


@pytest.mark.parametrize("value", ["a.b", "a,<b>", MARKER + "!"])
def test_bad_elements_are_refused(value: str) -> None:
    refused(("_elements", value))


# --- robustness: any input parses or is a safe 400 -----------------------------------

KEYS = [
    "code",
    "code:not",
    "value-quantity",
    "date",
    "subject",
    "subject:Patient",
    "subject.name",
    "subject:Patient.birthdate",
    "code-value-quantity",
    "_has:Observation:patient:code",
    "_id",
    "_lastUpdated",
    "_include",
    "_revinclude:iterate",
    "_sort",
    "_count",
    "_elements",
    "_summary",
    "_total",
    "nosuch",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(KEYS),
    st.text(st.sampled_from("ab12.-+e|$,\\:/ TZgtlsqp*"), max_size=10),
    st.sampled_from(["Observation", "Patient"]),
    st.booleans(),
)
def test_any_value_parses_or_is_a_safe_400(key: str, value: str, type_: str, strict: bool) -> None:
    try:
        parse_search((type_,), [(key, value + MARKER)], strict=strict)
    except RempartError as error:
        assert error.category is Category.INCORRECT
        assert MARKER not in str(error)
        assert all(MARKER not in issue.message for issue in error.issues)


def test_contained_search_is_reported_not_silently_ignored() -> None:
    query = parse_search(("Patient",), [("_contained", "true")])
    assert query.ignored == ("_contained",)
    assert parse_search(("Patient",), [("_contained", "false")]).ignored == ()
    with pytest.raises(RempartError) as caught:
        parse_search(("Patient",), [("_contained", "both")], strict=True)
    assert caught.value.category is Category.INCORRECT
