"""What FHIR R4 search matches (§3.1.1), checked by hand against small data sets.

Each test stores a few official examples or resources written here, searches over
HTTP through the real ASGI app (SQLite and PostgreSQL), and asserts the exact set of
ids that match. Every expectation carries the reason read off the resource JSON.
Boundary values that the specification leaves to the server (``ap``, a value exactly
on an implicit-precision edge) are avoided or asserted only as bounds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import EXAMPLES

FHIR = "application/fhir+json"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
Params = list[tuple[str, str]]


def example(name: str) -> dict[str, Any]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"official FHIR R4 examples not found at {EXAMPLES} (../shared/data)")
    return json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))  # type: ignore[no-any-return]


def store(client: TestClient, *resources: dict[str, Any]) -> None:
    for resource in resources:
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        response = client.put(path, content=json.dumps(resource), headers={"content-type": FHIR})
        assert response.status_code in (200, 201), response.text


def matches(client: TestClient, type_: str, params: Params) -> set[str]:
    response = client.get(f"/fhir/{type_}", params=tuple(params))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    entries = bundle.get("entry", [])
    return {e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"}


def patient(id_: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, **fields}


def observation(id_: str, **fields: Any) -> dict[str, Any]:
    code = {"coding": [{"system": LOINC, "code": "8867-4"}]}
    return {"resourceType": "Observation", "id": id_, "status": "final", "code": code, **fields}


def quantity(value: float, code: str = "mm[Hg]") -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


# --- string (§3.1.1.5.13) -------------------------------------------------------------

NAMES = [
    patient("accent", name=[{"family": "Ève", "given": ["Anne"]}]),
    patient("everett", name=[{"family": "EVERETT", "given": ["Dana"]}]),
    patient("steve", name=[{"family": "Steve", "given": ["Carl"]}]),
    patient("evans", name=[{"family": "Evans", "given": ["Bob"]}]),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Starts-with after case and accent folding: "Ève" -> "eve", "EVERETT" -> "everett";
        # "Evans" starts "eva", "Steve" has "eve" only inside.
        ([("name", "eve")], {"accent", "everett"}),
        ([("name", "EVE")], {"accent", "everett"}),
        ([("family", "eve")], {"accent", "everett"}),
        # given: Anne, Dana, Carl, Bob -> only "Dana" starts with "da".
        ([("given", "da")], {"everett"}),
        # :exact is the whole string, case and accents included.
        ([("name:exact", "Ève")], {"accent"}),
        ([("name:exact", "Eve")], set()),
        ([("name:exact", "EVERET")], set()),
        ([("family:exact", "EVERETT")], {"everett"}),
        # :contains anywhere, same folding: ève, EVERETT, stEVE; not Evans.
        ([("name:contains", "eve")], {"accent", "everett", "steve"}),
        ([("family:contains", "TEV")], {"steve"}),
    ],
)
def test_string_matching(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, *NAMES)
    assert matches(client, "Patient", params) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Patient-f001: family "van de Heuvel", given "Pieter", city Amsterdam,
        # postalCode "1024 RJ", country NLD, line "Van Egmondkade 23".
        # Patient-xcda: Levin, Henry, no address.
        ([("family", "van de")], {"f001"}),
        ([("family", "heuvel")], set()),  # starts-with of the whole family, not a word
        ([("family:contains", "heuvel")], {"f001"}),
        ([("given", "piet")], {"f001"}),
        ([("given", "henry")], {"xcda"}),
        ([("address-city", "amster")], {"f001"}),
        ([("address-postalcode", "1024")], {"f001"}),
        ([("address-country", "nld")], {"f001"}),
        ([("address", "amsterdam")], {"f001"}),
        ([("address", "van egmond")], {"f001"}),  # the line is one of the address's parts
        ([("address", "rotterdam")], set()),
    ],
)
def test_string_parts_of_name_and_address(
    client: TestClient, params: Params, expected: set[str]
) -> None:
    store(client, example("Patient-f001"), example("Patient-xcda"))
    assert matches(client, "Patient", params) == expected


# --- token (§3.1.1.5.6) ---------------------------------------------------------------

CODED = [
    observation(
        "loinc-hr",
        code={
            "coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}],
            "text": "Pulse",
        },
    ),
    observation(
        "other-system",
        status="preliminary",
        code={"coding": [{"system": SNOMED, "code": "8867-4"}]},
    ),
    observation("no-system", code={"coding": [{"code": "8867-4"}]}),
    observation(
        "weight",
        status="amended",
        code={"coding": [{"system": LOINC, "code": "29463-7"}], "text": "Body weight"},
    ),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # code alone: any system.
        ([("code", "8867-4")], {"loinc-hr", "other-system", "no-system"}),
        ([("code", f"{LOINC}|8867-4")], {"loinc-hr"}),
        # |code: only codings without a system.
        ([("code", "|8867-4")], {"no-system"}),
        # system|: any code in that system.
        ([("code", f"{LOINC}|")], {"loinc-hr", "weight"}),
        # Tokens match whole codes: "8867" is not "8867-4".
        ([("code", "8867")], set()),
        # :not: status final (loinc-hr, no-system) excluded.
        ([("status:not", "final")], {"other-system", "weight"}),
        ([("code:not", f"{LOINC}|8867-4")], {"other-system", "no-system", "weight"}),
        # :text on CodeableConcept.text ("Pulse", "Body weight") or Coding.display.
        ([("code:text", "pulse")], {"loinc-hr"}),
        ([("code:text", "heart rate")], {"loinc-hr"}),
        ([("code:text", "body")], {"weight"}),
    ],
)
def test_token_on_codes(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, *CODED)
    assert matches(client, "Observation", params) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # f001: urn:oid:2.16.840.1.113883.2.4.6.3|738472983; xcda: ...19.5|12345;
        # pat2: urn:oid:0.1.2.3.4.5.6.7|123456.
        ([("identifier", "urn:oid:2.16.840.1.113883.2.4.6.3|738472983")], {"f001"}),
        ([("identifier", "738472983")], {"f001"}),
        ([("identifier", "12345")], {"xcda"}),  # exact: pat2's 123456 is another value
        ([("identifier", "urn:oid:0.1.2.3.4.5.6.7|12345")], set()),
        ([("identifier", "urn:oid:0.1.2.3.4.5.6.7|")], {"pat2"}),
        # active: true on the three examples, false on "inactive", absent on "unknown".
        ([("active", "true")], {"f001", "xcda", "pat2"}),
        ([("active", "false")], {"inactive"}),
        # gender: f001 and xcda male, pat2 other, inactive female, unknown absent.
        ([("gender", "male")], {"f001", "xcda"}),
        ([("gender", "other")], {"pat2"}),
        ([("gender:not", "male")], {"pat2", "inactive", "unknown"}),
    ],
)
def test_token_on_identifiers_booleans_and_codes(
    client: TestClient, params: Params, expected: set[str]
) -> None:
    store(
        client,
        example("Patient-f001"),
        example("Patient-xcda"),
        example("Patient-pat2"),
        patient("inactive", active=False, gender="female"),
        patient("unknown"),
    )
    assert matches(client, "Patient", params) == expected


# --- reference (§3.1.1.5.7) -----------------------------------------------------------

REFERRING = [
    observation("to-p1", subject={"reference": "Patient/p1"}),
    observation("to-p2", subject={"reference": "Patient/p2"}),
    observation("to-group-p1", subject={"reference": "Group/p1"}),
    observation("to-remote", subject={"reference": "http://example.org/fhir/Patient/ext9"}),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("subject", "Patient/p1")], {"to-p1"}),
        # A bare id matches that id whatever the type: Patient/p1 and Group/p1.
        ([("subject", "p1")], {"to-p1", "to-group-p1"}),
        ([("subject:Patient", "p1")], {"to-p1"}),
        ([("subject:Group", "p1")], {"to-group-p1"}),
        ([("subject", "http://example.org/fhir/Patient/ext9")], {"to-remote"}),
        # Observation.patient is subject where it is a Patient.
        ([("patient", "p1")], {"to-p1"}),
        ([("patient", "Patient/p2")], {"to-p2"}),
    ],
)
def test_reference(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, *REFERRING)
    assert matches(client, "Observation", params) == expected


# --- date (§3.1.1.5.9, prefixes §3.1.1.4.1) ------------------------------------------

BIRTHS = [
    patient("b-day", birthDate="1974-12-25"),  # [1974-12-25, 1974-12-26)
    patient("b-month", birthDate="1974-12"),  # [1974-12-01, 1975-01-01)
    patient("b-year", birthDate="1974"),  # [1974-01-01, 1975-01-01)
    patient("b-next", birthDate="1975-01-01"),  # [1975-01-01, 1975-01-02)
    patient("b-prev", birthDate="1973-12-31"),  # [1973-12-31, 1974-01-01)
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # eq: the search range contains the target's range.
        ([("birthdate", "1974")], {"b-day", "b-month", "b-year"}),
        ([("birthdate", "eq1974-12")], {"b-day", "b-month"}),
        ([("birthdate", "1974-12-25")], {"b-day"}),
        ([("birthdate", "ne1974")], {"b-next", "b-prev"}),
        # gt: [1974-12-26, inf) overlaps b-month, b-year (to 1975-01-01) and b-next.
        ([("birthdate", "gt1974-12-25")], {"b-month", "b-year", "b-next"}),
        # lt: (-inf, 1974-12-25) overlaps b-month, b-year and b-prev.
        ([("birthdate", "lt1974-12-25")], {"b-month", "b-year", "b-prev"}),
        ([("birthdate", "ge1974-12-25")], {"b-day", "b-month", "b-year", "b-next"}),
        ([("birthdate", "le1974-12-25")], {"b-day", "b-month", "b-year", "b-prev"}),
        # sa / eb: no overlap, wholly after / before.
        ([("birthdate", "sa1974-12-25")], {"b-next"}),
        ([("birthdate", "eb1974-12-25")], {"b-prev"}),
        ([("birthdate", "gt1974")], {"b-next"}),
        ([("birthdate", "lt1974")], {"b-prev"}),
        ([("birthdate", "sa1974")], {"b-next"}),
        ([("birthdate", "eb1974")], {"b-prev"}),
    ],
)
def test_date_prefixes_and_precision(
    client: TestClient, params: Params, expected: set[str]
) -> None:
    store(client, *BIRTHS)
    assert matches(client, "Patient", params) == expected


def test_date_approximately(client: TestClient) -> None:
    # ap's width is the server's choice (10 % of the distance to now is suggested):
    # it must take the exact day and leave a date 75 years away.
    store(client, *BIRTHS, patient("b-far", birthDate="1900-01-01"))
    found = matches(client, "Patient", [("birthdate", "ap1974-12-25")])
    assert "b-day" in found and "b-far" not in found


# With Encounter-home: 2015-01-17T16:00+10:00 to 16:30+10:00, i.e. 06:00-06:30Z that day.
ENCOUNTERS = [
    {
        "resourceType": "Encounter",
        "id": "long",
        "status": "finished",
        "class": {"code": "AMB"},
        "period": {"start": "2015-01-10", "end": "2015-01-20"},
    },
    {
        "resourceType": "Encounter",
        "id": "open",
        "status": "in-progress",
        "class": {"code": "AMB"},
        "period": {"start": "2015-01-18"},  # no end: ongoing
    },
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Only "home" lies within 2015-01-17; "long" spans it, "open" starts after it.
        ([("date", "2015-01-17")], {"home"}),
        ([("date", "2015-01")], {"home", "long"}),  # "open" never ends, so not inside
        # ge 2015-01-18: "long" runs to the end of 01-20, "open" starts that day.
        ([("date", "ge2015-01-18")], {"long", "open"}),
        ([("date", "lt2015-01-15")], {"long"}),
        ([("date", "sa2015-01-17")], {"open"}),
        ([("date", "eb2015-01-17")], set()),
        ([("date", "gt2099-01-01")], {"open"}),  # an open end is ongoing, unbounded
        ([("date", "2015-01-17T06:15:00Z")], set()),  # a 1 s range contains no period
        # le: (-inf, 06:15:00Z) overlaps "home" (from 06:00Z) and "long".
        ([("date", "le2015-01-17T06:15:00Z")], {"home", "long"}),
    ],
)
def test_date_on_periods(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, example("Encounter-home"), *ENCOUNTERS)
    assert matches(client, "Encounter", params) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # tz: 2020-06-30T23:30:00-05:00 is 2020-07-01T04:30:00Z, to the second.
        ([("date", "2020-07-01T04:30:00Z")], {"tz"}),
        ([("date", "2020-06-30T23:30:00-05:00")], {"tz"}),
        ([("date", "2020-07-01T06:30:00+02:00")], {"tz"}),
        ([("date", "gt2020-07-01T00:00:00Z")], {"tz", "period"}),
        ([("date", "lt2020-07-01T00:00:00Z")], {"period"}),
        # period: effectivePeriod 2020-06-29T12:00Z .. 2020-07-02T12:00Z.
        ([("date", "2020-06-30T12:00:00Z")], set()),  # inside "period", does not contain it
        ([("date", "2020")], {"tz", "period"}),
        ([("date", "sa2020-07-01T04:30:00Z")], set()),
        ([("date", "eb2020-06-29T11:00:00Z")], set()),
        ([("date", "sa2020-06-29T11:00:00Z")], {"period", "tz"}),
    ],
)
def test_date_with_time_zone_and_effective_period(
    client: TestClient, params: Params, expected: set[str]
) -> None:
    store(
        client,
        observation("tz", effectiveDateTime="2020-06-30T23:30:00-05:00"),
        observation(
            "period",
            effectivePeriod={"start": "2020-06-29T12:00:00Z", "end": "2020-07-02T12:00:00Z"},
        ),
    )
    assert matches(client, "Observation", params) == expected


# --- number and quantity (§3.1.1.5.8, §3.1.1.5.10) ------------------------------------

# No value sits on an implicit-precision edge, so the target's own precision is moot.
QUANTITIES = [
    observation("q99.4", valueQuantity=quantity(99.4)),
    observation("q99.6", valueQuantity=quantity(99.6)),
    observation("q99.96", valueQuantity=quantity(99.96)),
    observation("q100.02", valueQuantity=quantity(100.02)),
    observation("q100.04", valueQuantity=quantity(100.04)),
    observation("q100.4", valueQuantity=quantity(100.4)),
    observation("q100.6", valueQuantity=quantity(100.6)),
    observation("q150", valueQuantity=quantity(150)),
    observation("mg100.02", valueQuantity=quantity(100.02, "mg")),
]
ALL_MMHG = {"q99.4", "q99.6", "q99.96", "q100.02", "q100.04", "q100.4", "q100.6", "q150"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # 100 has 3 significant digits: [99.5, 100.5).
        (
            [("value-quantity", "100")],
            {"q99.6", "q99.96", "q100.02", "q100.04", "q100.4", "mg100.02"},
        ),
        # 100.0 has 4: [99.95, 100.05).
        ([("value-quantity", "100.0")], {"q99.96", "q100.02", "q100.04", "mg100.02"}),
        ([("value-quantity", "ne100")], {"q99.4", "q100.6", "q150"}),
        (
            [("value-quantity", f"100|{UCUM}|mm[Hg]")],
            {"q99.6", "q99.96", "q100.02", "q100.04", "q100.4"},
        ),
        ([("value-quantity", "100||mg")], {"mg100.02"}),
        ([("value-quantity", f"100.0|{UCUM}|mg")], {"mg100.02"}),
        ([("value-quantity", "gt100.5")], {"q100.6", "q150"}),
        ([("value-quantity", "ge100.5")], {"q100.6", "q150"}),
        ([("value-quantity", "lt99.5")], {"q99.4"}),
        ([("value-quantity", "le99.5")], {"q99.4"}),
        ([("value-quantity", "sa100.5")], {"q100.6", "q150"}),
        ([("value-quantity", "eb99.5")], {"q99.4"}),
        ([("value-quantity", f"gt120|{UCUM}|mm[Hg]")], {"q150"}),
    ],
)
def test_quantity(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, *QUANTITIES)
    assert matches(client, "Observation", params) == expected


def test_quantity_approximately(client: TestClient) -> None:
    # ap: within the server's margin (10 % suggested) of 100: all near 100, not 150.
    store(client, *QUANTITIES)
    found = matches(client, "Observation", [("value-quantity", "ap100")])
    assert {"q99.96", "q100.02"} <= found and "q150" not in found


def risk(id_: str, probability: float) -> dict[str, Any]:
    return {
        "resourceType": "RiskAssessment",
        "id": id_,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"outcome": {"text": "stroke"}, "probabilityDecimal": probability}],
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # 0.2 means [0.15, 0.25): only r0.2.
        ([("probability", "0.2")], {"r0.2"}),
        ([("probability", "0.02")], {"r0.02"}),
        ([("probability", "gt0.3")], {"r0.4"}),
        ([("probability", "lt0.1")], {"r0.02"}),
        ([("probability", "ge0.2")], {"r0.2", "r0.4"}),
        ([("probability", "le0.2")], {"r0.02", "r0.2"}),
        ([("probability", "ne0.2")], {"r0.02", "r0.4"}),
        ([("probability", "0.3")], set()),
    ],
)
def test_number(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, risk("r0.02", 0.02), risk("r0.2", 0.2), risk("r0.4", 0.4))
    assert matches(client, "RiskAssessment", params) == expected


# --- uri (§3.1.1.5.11) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # urls: 3141 and f201 under http://hl7.org/fhir/Questionnaire/, zika under
        # http://example.org/Questionnaire/.
        ([("url", "http://hl7.org/fhir/Questionnaire/3141")], {"3141"}),
        ([("url", "http://hl7.org/fhir/Questionnaire")], set()),  # uri match is exact
        ([("url:below", "http://hl7.org/fhir/Questionnaire")], {"3141", "f201"}),
        ([("url:below", "http://hl7.org/fhir")], {"3141", "f201"}),
        ([("url:below", "http://example.org")], {"zika-virus-exposure-assessment"}),
        ([("url:above", "http://hl7.org/fhir/Questionnaire/3141/_history/2")], {"3141"}),
        ([("url:above", "http://hl7.org/fhir/Questionnaire")], set()),
    ],
)
def test_uri(client: TestClient, params: Params, expected: set[str]) -> None:
    store(
        client,
        example("Questionnaire-3141"),
        example("Questionnaire-f201"),
        example("Questionnaire-zika-virus-exposure-assessment"),
    )
    assert matches(client, "Questionnaire", params) == expected


# --- composite (§3.1.1.5.12) ----------------------------------------------------------


def blood_pressure(id_: str, systolic: float, diastolic: float) -> dict[str, Any]:
    def part(code: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": quantity(value),
        }

    return observation(
        id_,
        code={"coding": [{"system": LOINC, "code": "85354-9"}]},
        component=[part("8480-6", systolic), part("8462-4", diastolic)],
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # blood-pressure-dar: systolic 8480-6 = 107, diastolic has no value.
        # high: 130/85. crossed: 95/105 (only the diastolic is above 100).
        (
            [("component-code-value-quantity", f"{LOINC}|8480-6$gt100")],
            {"blood-pressure-dar", "high"},
        ),
        # The code and value must come from the same component: crossed's 105 is diastolic.
        ([("component-code-value-quantity", f"{LOINC}|8462-4$gt100")], {"crossed"}),
        ([("component-code-value-quantity", "8480-6$lt100")], {"crossed"}),
        ([("component-code-value-quantity", f"{LOINC}|8480-6$107")], {"blood-pressure-dar"}),
        # Observation-example: code 29463-7 (among others), value 185 [lb_av].
        ([("code-value-quantity", f"{LOINC}|29463-7$gt150")], {"example"}),
        ([("code-value-quantity", f"{LOINC}|29463-7$lt150")], set()),
        ([("code-value-quantity", f"{LOINC}|8480-6$gt150")], set()),
    ],
)
def test_composite(client: TestClient, params: Params, expected: set[str]) -> None:
    store(
        client,
        example("Observation-blood-pressure-dar"),
        example("Observation-example"),
        blood_pressure("high", 130, 85),
        blood_pressure("crossed", 95, 105),
    )
    assert matches(client, "Observation", params) == expected


# --- common parameters (§3.1.1.3) ------------------------------------------------------

TAGGED = patient(
    "tagged",
    meta={
        "tag": [{"system": "http://example.org/tags", "code": "vip"}],
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ],
        "profile": ["http://example.org/StructureDefinition/special-patient"],
        "source": "http://example.org/source#a",
    },
)
PLAIN = patient(
    "plain",
    meta={
        "tag": [{"system": "http://example.org/tags", "code": "other"}],
        "source": "http://example.org/source#b",
    },
)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("_id", "tagged")], {"tagged"}),
        ([("_id", "tagged,plain")], {"tagged", "plain"}),
        ([("_id", "tag")], set()),  # ids are tokens: no prefix match
        ([("_tag", "http://example.org/tags|vip")], {"tagged"}),
        ([("_tag", "other")], {"plain"}),
        ([("_tag:not", "vip")], {"plain"}),
        ([("_security", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R")], {"tagged"}),
        ([("_profile", "http://example.org/StructureDefinition/special-patient")], {"tagged"}),
        ([("_source", "http://example.org/source#b")], {"plain"}),
        ([("_source", "http://example.org/source")], set()),
    ],
)
def test_meta_parameters(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, TAGGED, PLAIN)
    assert matches(client, "Patient", params) == expected


def test_last_updated(client: TestClient) -> None:
    store(client, patient("first"))
    first = client.get("/fhir/Patient/first").json()["meta"]["lastUpdated"]
    store(client, patient("second"))
    second = client.get("/fhir/Patient/second").json()["meta"]["lastUpdated"]
    assert first < second  # the stamps are microsecond instants, in UTC
    assert matches(client, "Patient", [("_lastUpdated", first)]) == {"first"}
    assert matches(client, "Patient", [("_lastUpdated", f"gt{first}")]) == {"second"}
    assert matches(client, "Patient", [("_lastUpdated", f"le{first}")]) == {"first"}
    assert matches(client, "Patient", [("_lastUpdated", f"ge{first}")]) == {"first", "second"}
    assert matches(client, "Patient", [("_lastUpdated", f"lt{second}")]) == {"first"}
    assert matches(client, "Patient", [("_lastUpdated", "gt2000-01-01")]) == {"first", "second"}
    assert matches(client, "Patient", [("_lastUpdated", "lt2000-01-01")]) == set()


# --- :missing, OR and AND (§3.1.1.4.5, §3.1.1.3.1) ------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # f001 and xcda have a birthDate, pat2 has none.
        ([("birthdate:missing", "true")], {"pat2"}),
        ([("birthdate:missing", "false")], {"f001", "xcda"}),
        # Only f001 has an address.
        ([("address:missing", "true")], {"xcda", "pat2"}),
        ([("address:missing", "false")], {"f001"}),
        ([("gender:missing", "true")], set()),
        # Comma is OR; f001, xcda male, pat2 other.
        ([("gender", "male,other")], {"f001", "xcda", "pat2"}),
        ([("family", "levin,donald")], {"xcda", "pat2"}),
        # Repeating is AND; pat2 is Donald Duck, xcda Henry Levin.
        ([("name", "duck"), ("name", "donald")], {"pat2"}),
        ([("name", "duck"), ("name", "levin")], set()),
        ([("gender", "male"), ("birthdate", "lt1940")], {"xcda"}),
        (
            [("gender", "male,other"), ("active", "true"), ("family", "van,donald")],
            {"f001", "pat2"},
        ),
    ],
)
def test_missing_or_and(client: TestClient, params: Params, expected: set[str]) -> None:
    store(client, example("Patient-f001"), example("Patient-xcda"), example("Patient-pat2"))
    assert matches(client, "Patient", params) == expected


# --- chains and reverse chains (§3.1.1.4.9, §3.1.1.4.10) ------------------------------

CHAINED = [
    {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Whoever"}]},
    patient(
        "p1", name=[{"family": "Alpha"}], generalPractitioner=[{"reference": "Practitioner/dr"}]
    ),
    patient("p2", name=[{"family": "Beta"}]),
    {"resourceType": "Location", "id": "l1", "name": "Alpha"},
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
    },
    {
        "resourceType": "Encounter",
        "id": "e2",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p2"},
    },
    observation("o1", subject={"reference": "Patient/p1"}, encounter={"reference": "Encounter/e1"}),
    observation(
        "o2",
        subject={"reference": "Patient/p2"},
        encounter={"reference": "Encounter/e2"},
        code={"coding": [{"system": LOINC, "code": "29463-7"}]},
    ),
    observation("o3", subject={"reference": "Location/l1"}),
]


@pytest.mark.parametrize(
    ("type_", "params", "expected"),
    [
        # p1 is Alpha; o1 is about p1 (and o3 about Location l1, also named Alpha;
        # Group, another subject type, has no name parameter in R4).
        ("Observation", [("subject:Patient.name", "alpha")], {"o1"}),
        ("Observation", [("patient.name", "alpha")], {"o1"}),
        ("Observation", [("subject:Patient.family", "beta")], {"o2"}),
        ("Observation", [("subject:Location.name", "alpha")], {"o3"}),
        # Two levels: o1 -> e1 -> p1 "Alpha".
        ("Observation", [("encounter.patient.name", "alpha")], {"o1"}),
        # Encounter -> patient -> general practitioner "Whoever": e1 (p1's gp is dr).
        ("Encounter", [("patient.general-practitioner:Practitioner.name", "who")], {"e1"}),
        ("Encounter", [("subject:Patient.general-practitioner:Practitioner.name", "who")], {"e1"}),
        # _has: patients with an Observation (patient=them) coded 8867-4: o1 -> p1.
        ("Patient", [("_has:Observation:patient:code", "8867-4")], {"p1"}),
        ("Patient", [("_has:Observation:patient:code", "29463-7")], {"p2"}),
        ("Patient", [("_has:Observation:subject:code", "1234-5")], set()),
        # Nested: a patient's Encounter that an 8867-4 Observation points at: e1 <- o1.
        ("Patient", [("_has:Encounter:patient:_has:Observation:encounter:code", "8867-4")], {"p1"}),
        ("Practitioner", [("_has:Patient:general-practitioner:name", "alpha")], {"dr"}),
    ],
)
def test_chains_and_has(client: TestClient, type_: str, params: Params, expected: set[str]) -> None:
    store(client, *CHAINED)
    assert matches(client, type_, params) == expected


def test_untyped_chain_finds_patient_subjects(client: TestClient) -> None:
    # subject.name searches every target type with a name parameter (a string on both
    # Patient and Location): the Patient p1 and the Location l1 are both called Alpha.
    store(client, *CHAINED)
    assert matches(client, "Observation", [("subject.name", "beta")]) == {"o2"}
    assert matches(client, "Observation", [("subject.name", "alpha")]) == {"o1", "o3"}
