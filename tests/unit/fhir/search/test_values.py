"""Typed search values: prefixes, implicit ranges, escapes (FHIR R4 §3.1.1.4, §3.1.1.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.errors import Category, RempartError
from rempart.fhir.search.parameters import SearchParam, parameters_for
from rempart.fhir.search.query import PREFIXES, CompositeQ, DateQ, NumberQ, TokenQ
from rempart.fhir.search.values import parse_date, parse_value, split_values

MARKER = "zq7MARKERzq7"
OBSERVATION = parameters_for("Observation")
CODE = OBSERVATION["code"]  # token
QUANTITY = OBSERVATION["value-quantity"]
NUMBER = parameters_for("RiskAssessment")["probability"]
COMPOSITE = OBSERVATION["code-value-quantity"]


def micros(year: int, month: int, day: int, *time: int) -> int:
    hour, minute, second = (*time, 0, 0, 0)[:3]
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def assert_safe_error(error: RempartError) -> None:
    """The caller's text never comes back in the message or the issues."""
    assert error.category is Category.INCORRECT
    assert MARKER not in str(error)
    assert all(MARKER not in (issue.message + (issue.path or "")) for issue in error.issues)


# --- splitting and escapes (§3.1.1.3 "escaping search parameters") ------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a,b", ["a", "b"]),
        (r"a\,b", ["a,b"]),
        (r"a\,b,c", ["a,b", "c"]),
        ("a,,b", ["a", "", "b"]),
        # other escapes survive the split, so the typed parser sees them
        (r"a\|b,c", [r"a\|b", "c"]),
        (r"a\$b", [r"a\$b"]),
        # an escaped backslash does not escape the comma after it
        (r"a\\,b", [r"a\\", "b"]),
    ],
)
def test_split_values_honours_escapes(text: str, parts: list[str]) -> None:
    assert split_values(text) == parts


def test_split_values_refuses_very_long_text() -> None:
    with pytest.raises(RempartError) as caught:
        split_values(MARKER * 200)
    assert_safe_error(caught.value)


@given(st.lists(st.text(st.sampled_from("ab,\\|$"), max_size=6), min_size=1, max_size=4))
def test_split_values_inverts_escaping(values: list[str]) -> None:
    escaped = ",".join(v.replace("\\", "\\\\").replace(",", "\\,") for v in values)
    unescaped = [p.replace("\\\\", "\\") for p in split_values(escaped)]
    assert unescaped == values


def test_string_value_unescapes() -> None:
    value = parse_value(parameters_for("Patient")["name"], None, r"a\,b\$c\|d\\e")
    assert value.raw == r"a,b$c|d\e"  # type: ignore[union-attr]


# --- token (§3.1.1.5.11) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("1234-5", TokenQ(None, "1234-5")),
        ("http://loinc.org|1234-5", TokenQ("http://loinc.org", "1234-5")),
        ("|1234-5", TokenQ(None, "1234-5", no_system=True)),
        ("http://loinc.org|", TokenQ("http://loinc.org", None)),
        (r"a\|b", TokenQ(None, "a|b")),
        (r"s\|t|c\,d", TokenQ("s|t", "c,d")),
    ],
)
def test_token_forms(text: str, token: TokenQ) -> None:
    assert parse_value(CODE, None, text) == token


def test_token_escaped_backslash_before_bar() -> None:
    assert parse_value(CODE, None, "sys\\\\|code") == TokenQ("sys\\", "code")


@pytest.mark.parametrize("text", ["", "|", "a|b|c"])
def test_token_refuses_empty_or_malformed(text: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_value(CODE, None, text + ("|" + MARKER if text == "a|b|c" else ""))
    assert_safe_error(caught.value)


def test_token_text_modifier_normalizes() -> None:
    assert parse_value(CODE, "text", "Héllo|World") == TokenQ(None, "hello|world")


# --- number (§3.1.1.5.8) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "low", "high"),
    [
        ("100", "100", "99.5", "100.5"),
        ("100.0", "100.0", "99.95", "100.05"),
        ("100.00", "100", "99.995", "100.005"),
        ("0.001", "0.001", "0.0005", "0.0015"),
        ("-5", "-5", "-5.5", "-4.5"),
        ("+5", "5", "4.5", "5.5"),
        (".5", "0.5", "0.45", "0.55"),
        ("1.5e1", "15", "14.5", "15.5"),
        # One significant figure: the precision is 100, so [50, 150). The spec's own
        # example says [95, 105) while calling it "1 significant figure"; that range
        # would be two figures, so the server follows the stated rule, not the number.
        ("1e2", "100", "50", "150"),
        ("1E2", "100", "50", "150"),
    ],
)
def test_number_implicit_range(text: str, value: str, low: str, high: str) -> None:
    number = parse_value(NUMBER, None, text)
    assert number == NumberQ("eq", Decimal(value), Decimal(low), Decimal(high))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_number_prefixes(prefix: str) -> None:
    number = parse_value(NUMBER, None, f"{prefix}-2.5")
    assert number == NumberQ(prefix, Decimal("-2.5"), Decimal("-2.55"), Decimal("-2.45"))


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000)
)
def test_number_range_brackets_value(value: Decimal) -> None:
    number = parse_value(NUMBER, None, str(value))
    assert isinstance(number, NumberQ)
    assert number.low < number.value < number.high
    assert number.value == value
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    assert number.high - number.low == Decimal(1).scaleb(exponent)


@pytest.mark.parametrize(
    "text", ["", "gt", "abc", "1,0", "1..2", "0x10", "1e", "NaN", "Infinity", "1e1234", "gte5"]
)
def test_number_refuses_non_numbers(text: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_value(NUMBER, None, text + MARKER)
    assert_safe_error(caught.value)
    with pytest.raises(RempartError):
        parse_value(NUMBER, None, text)


# --- quantity (§3.1.1.5.10) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "system", "code"),
    [
        ("5.4", None, None),
        ("5.4|http://unitsofmeasure.org|mg", "http://unitsofmeasure.org", "mg"),
        ("5.4||mg", None, "mg"),
        (r"5.4|s\|t|m\|g", "s|t", "m|g"),
    ],
)
def test_quantity_forms(text: str, system: str | None, code: str | None) -> None:
    quantity = parse_value(QUANTITY, None, text)
    assert quantity == NumberQ("eq", Decimal("5.4"), Decimal("5.35"), Decimal("5.45"), system, code)


def test_quantity_keeps_prefix_and_range() -> None:
    quantity = parse_value(QUANTITY, None, "le1e1|http://unitsofmeasure.org|kg")
    assert quantity == NumberQ(
        "le", Decimal("10"), Decimal("5"), Decimal("15"), "http://unitsofmeasure.org", "kg"
    )


@pytest.mark.parametrize("text", ["5|a", "5|a|b|c", "x|a|b"])
def test_quantity_refuses_malformed(text: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_value(QUANTITY, None, text + MARKER)
    assert_safe_error(caught.value)


# --- date (§3.1.1.5.9) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", (2024, 1, 1), (2025, 1, 1)),
        ("2024-02", (2024, 2, 1), (2024, 3, 1)),
        ("2024-12", (2024, 12, 1), (2025, 1, 1)),
        ("2024-02-29", (2024, 2, 29), (2024, 3, 1)),
        ("2024-03-05T10:30Z", (2024, 3, 5, 10, 30), (2024, 3, 5, 10, 31)),
        ("2024-03-05T10:30:15Z", (2024, 3, 5, 10, 30, 15), (2024, 3, 5, 10, 30, 16)),
        ("2024-03-05T10:30:15+02:00", (2024, 3, 5, 8, 30, 15), (2024, 3, 5, 8, 30, 16)),
        ("2024-03-05T00:30:00-01:30", (2024, 3, 5, 2, 0, 0), (2024, 3, 5, 2, 0, 1)),
    ],
)
def test_date_periods(text: str, start: tuple[int, ...], end: tuple[int, ...]) -> None:
    assert parse_date(text) == DateQ("eq", micros(*start), micros(*end))


def test_date_fraction_is_a_microsecond_period() -> None:
    date = parse_date("2024-03-05T10:30:15.25Z")
    assert date.end - date.start == 1
    assert date.start == micros(2024, 3, 5, 10, 30, 15) + 250_000


@pytest.mark.parametrize("prefix", PREFIXES)
def test_date_prefixes(prefix: str) -> None:
    assert parse_date(f"{prefix}2024") == DateQ(prefix, micros(2024, 1, 1), micros(2025, 1, 1))


@pytest.mark.parametrize(
    "text",
    ["", "24", "2024-13", "2024-02-30", "2024-01-01T25:00Z", "2024-01-01T10:00+15:00", "xx2024"],
)
def test_date_refuses_invalid(text: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_date(text + MARKER)
    assert_safe_error(caught.value)
    with pytest.raises(RempartError):
        parse_date(text)


# --- composite (§3.1.1.5.4) --------------------------------------------------------------


def test_composite_splits_on_dollar() -> None:
    value = parse_value(COMPOSITE, None, r"http://loinc.org|8480-6$gt150")
    assert value == CompositeQ(
        (
            TokenQ("http://loinc.org", "8480-6"),
            NumberQ("gt", Decimal("150"), Decimal("149.5"), Decimal("150.5")),
        )
    )


def test_composite_escaped_dollar_stays_in_the_part() -> None:
    value = parse_value(COMPOSITE, None, r"a\$b$5")
    assert isinstance(value, CompositeQ)
    assert value.parts[0] == TokenQ(None, "a$b")


@pytest.mark.parametrize("text", ["a", "a$1$2"])
def test_composite_refuses_wrong_arity(text: str) -> None:
    with pytest.raises(RempartError) as caught:
        parse_value(COMPOSITE, None, text + MARKER)
    assert_safe_error(caught.value)


def test_special_parameter_cannot_be_searched() -> None:
    special = SearchParam("near", "special", "Location.position")
    with pytest.raises(RempartError) as caught:
        parse_value(special, None, MARKER)
    assert_safe_error(caught.value)
