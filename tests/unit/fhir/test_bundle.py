"""Batch and transaction Bundles (FHIR R4 http.html §3.1.0.13, Bundle bdl-7/bdl-8)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rempart.errors import Category, RempartError
from rempart.fhir.bundle import (
    Entry,
    entry_response,
    parse_bundle,
    processing_order,
    response_bundle,
)
from rempart.fhir.references import (
    conditional_references,
    rewrite_references,
    unresolved_placeholders,
)

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "data" / "fhir-r4" / "examples"
SECRET = "s3cr3t-caller-value"
UUID_A = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
UUID_B = "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059"


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method: str, url: str, resource: Any = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"request": {"method": method, "url": url}}
    if resource is not None:
        item["resource"] = resource
    if "fullUrl" in extra:
        item["fullUrl"] = extra.pop("fullUrl")
    item["request"].update(extra)
    return item


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **fields}


def parse(kind: str, *entries: dict[str, Any], **options: Any) -> list[Entry]:
    found_kind, parsed = parse_bundle(bundle(kind, *entries), max_entries=100, **options)
    assert found_kind == kind
    return parsed


def fails(body: Any, category: Category = Category.INCORRECT, **options: Any) -> RempartError:
    with pytest.raises(RempartError) as caught:
        parse_bundle(body, max_entries=options.pop("max_entries", 100), **options)
    error = caught.value
    assert error.category is category
    assert SECRET not in error.message
    assert all(SECRET not in issue.message for issue in error.issues)
    return error


# --- parsing ---------------------------------------------------------------------------


def test_parse_reads_every_part_of_a_request() -> None:
    [created, read, searched, history] = parse(
        "transaction",
        entry(
            "POST",
            "Patient",
            patient(),
            fullUrl=UUID_A,
            ifNoneExist="?identifier=http://x|123",
        ),
        entry("GET", "Patient/abc", ifNoneMatch='W/"2"', ifModifiedSince="2024-01-01"),
        entry("HEAD", "/Observation?code=http://loinc.org|1234-5&subject=Patient/abc"),
        entry("GET", "Patient/abc/_history/2", ifMatch='W/"2"'),
    )
    assert created == Entry(
        index=0,
        method="POST",
        url="Patient",
        type="Patient",
        id=None,
        query=(),
        full_url=UUID_A,
        resource=patient(),
        if_none_exist="identifier=http://x|123",
        if_match=None,
        if_none_match=None,
        if_modified_since=None,
    )
    assert (read.type, read.id, read.if_none_match) == ("Patient", "abc", 'W/"2"')
    assert read.if_modified_since == "2024-01-01"
    assert searched.method == "HEAD"
    assert searched.url.startswith("Observation?")
    assert searched.query == (("code", "http://loinc.org|1234-5"), ("subject", "Patient/abc"))
    assert (history.type, history.id, history.index) == ("Patient", "abc", 3)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("metadata", (None, None)),
        ("?_type=Patient", (None, None)),
        ("$everything", (None, None)),
        ("Patient/$everything", ("Patient", None)),
        ("Patient/abc/$everything", ("Patient", "abc")),
        ("Patient/abc/Observation", ("Patient", "abc")),
        ("Patient/_history", ("Patient", None)),
    ],
)
def test_parse_accepts_the_read_urls_of_the_rest_api(
    url: str, expected: tuple[str | None, str | None]
) -> None:
    [parsed] = parse("batch", entry("GET", url))
    assert (parsed.type, parsed.id) == expected


def test_parse_takes_urls_under_the_server_base_as_relative() -> None:
    base = "https://ehr.example.org/fhir/"
    url = "https://ehr.example.org/fhir/Patient/abc"
    [parsed] = parse("batch", entry("GET", url), base=base)
    assert (parsed.url, parsed.type, parsed.id) == ("Patient/abc", "Patient", "abc")


def test_parse_accepts_conditional_writes_and_an_empty_bundle() -> None:
    parsed = parse(
        "transaction",
        entry("PUT", "Patient?identifier=x|1", patient()),
        entry("DELETE", "Observation?code=y"),
        entry("PATCH", "Patient/abc", {"resourceType": "Parameters"}),
    )
    assert [(e.type, e.id, e.query) for e in parsed] == [
        ("Patient", None, (("identifier", "x|1"),)),
        ("Observation", None, (("code", "y"),)),
        ("Patient", "abc", ()),
    ]
    assert parse_bundle({"resourceType": "Bundle", "type": "batch"}, max_entries=0) == (
        "batch",
        [],
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"resourceType": "Patient", "type": "batch"},
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {"resourceType": "Bundle", "type": "transaction", "entry": {"a": 1}},
    ],
)
def test_parse_refuses_what_is_not_a_batch_or_transaction(body: Any) -> None:
    fails(body)


def test_parse_refuses_more_entries_than_allowed() -> None:
    body = bundle("batch", *[entry("GET", "Patient/a")] * 3)
    error = fails(body, Category.TOO_LARGE, max_entries=2)
    assert "2" in error.message


BAD_ENTRIES: list[tuple[str, str, Any]] = [
    ("not an object", "no request", SECRET),
    ("no request", "no request", {"resource": patient()}),
    ("no method", "request.method", {"request": {"url": "Patient"}}),
    ("unknown method", "request.method", entry(SECRET, "Patient")),
    ("lowercase method", "request.method", entry("get", "Patient")),
    ("no url", "request.url is missing", {"request": {"method": "GET"}}),
    ("absolute url", "relative", entry("GET", f"http://{SECRET}.example/Patient/1")),
    ("urn url", "relative", entry("GET", f"urn:{SECRET}")),
    ("network path url", "relative", entry("GET", f"//{SECRET}/Patient/1")),
    ("unknown type", "no known resource type", entry("GET", f"Secret{SECRET}/1")),
    ("dot segment", "invalid path", entry("GET", "Patient/../Observation")),
    ("empty segment", "invalid path", entry("GET", "Patient//1")),
    ("fragment", "not a valid url", entry("GET", f"Patient/1#{SECRET}")),
    ("control character", "not a valid url", entry("GET", f"Patient?name={SECRET}\n")),
    (
        "too many parameters",
        "too many parameters",
        entry("GET", "Patient?" + "&".join(["a=1"] * 201)),
    ),
    ("POST without resource", "needs a resource", entry("POST", "Patient")),
    ("PUT without resource", "needs a resource", entry("PUT", "Patient/1")),
    ("PATCH without resource", "needs a resource", entry("PATCH", "Patient/1")),
    (
        "POST type mismatch",
        "type does not match",
        entry("POST", "Patient", {"resourceType": "Observation"}),
    ),
    (
        "PUT type mismatch",
        "type does not match",
        entry("PUT", "Patient/1", {"resourceType": "Observation", "id": "1"}),
    ),
    ("PUT id mismatch", "id does not match", entry("PUT", "Patient/1", patient(id=SECRET))),
    ("PUT without id", "id does not match", entry("PUT", "Patient/1", patient())),
    ("PATCH body", "PATCH body", entry("PATCH", "Patient/1", patient())),
    (
        "unknown resource type",
        "no known resourceType",
        entry("POST", "Patient", {"resourceType": SECRET}),
    ),
    ("resource not an object", "no known resourceType", entry("POST", "Patient", [SECRET])),
    ("POST to an instance", "POST url", entry("POST", "Patient/1", patient())),
    ("POST with a query", "POST url", entry("POST", "Patient?name=x", patient())),
    ("DELETE of a type", "DELETE url", entry("DELETE", "Patient")),
    ("DELETE with an empty condition", "DELETE url", entry("DELETE", "Patient?")),
    ("DELETE of a version", "DELETE url", entry("DELETE", "Patient/1/_history/2")),
    ("PUT of a system url", "PUT url", entry("PUT", "metadata", patient())),
    (
        "header not a string",
        "ifMatch must be a string",
        entry("GET", "Patient/1", ifMatch=[SECRET]),
    ),
    (
        "bad uuid fullUrl",
        "fullUrl",
        entry("POST", "Patient", patient(), fullUrl=f"urn:uuid:{SECRET}"),
    ),
    ("uppercase uuid", "fullUrl", entry("POST", "Patient", patient(), fullUrl=UUID_A.upper())),
    ("bad oid fullUrl", "fullUrl", entry("POST", "Patient", patient(), fullUrl="urn:oid:1.02.3")),
    ("other scheme", "fullUrl", entry("POST", "Patient", patient(), fullUrl=f"ftp://{SECRET}/P/1")),
    ("relative fullUrl", "fullUrl", entry("POST", "Patient", patient(), fullUrl="Patient/1")),
    (
        "versioned fullUrl",
        "fullUrl",
        entry("PUT", "Patient/1", patient(id="1"), fullUrl="http://x/Patient/1/_history/2"),
    ),
]


@pytest.mark.parametrize(
    ("case", "reason", "item"), BAD_ENTRIES, ids=[case for case, _, _ in BAD_ENTRIES]
)
def test_parse_refuses_an_invalid_entry_naming_it_by_index(
    case: str, reason: str, item: Any
) -> None:
    error = fails(bundle("batch", entry("GET", "Patient/ok"), item))
    assert error.message.startswith("entry 1: "), case
    assert reason in error.message, case
    assert error.issues[0].path is not None
    assert error.issues[0].path.startswith("Bundle.entry[1]")


def test_parse_refuses_an_absolute_url_outside_the_server_base() -> None:
    body = bundle("batch", entry("GET", f"https://{SECRET}.example/fhir/Patient/1"))
    fails(body, base="https://ehr.example.org/fhir")
    smuggled = bundle("batch", entry("GET", "https://ehr.example.org/fhir/http://evil/x"))
    fails(smuggled, base="https://ehr.example.org/fhir")


def test_parse_accepts_valid_oid_and_absolute_full_urls() -> None:
    parsed = parse(
        "transaction",
        entry("POST", "Patient", patient(), fullUrl="urn:oid:1.2.840.10008"),
        entry("PUT", "Patient/1", patient(id="1"), fullUrl="https://ehr.example.org/Patient/1"),
        entry("GET", "Patient/2"),
    )
    assert [e.full_url for e in parsed] == [
        "urn:oid:1.2.840.10008",
        "https://ehr.example.org/Patient/1",
        None,
    ]


def test_parse_refuses_a_repeated_full_url_in_any_bundle() -> None:
    for kind in ("batch", "transaction"):
        error = fails(
            bundle(
                kind,
                entry("POST", "Patient", patient(), fullUrl=UUID_A),
                entry("POST", "Patient", patient(), fullUrl=UUID_A),
            )
        )
        assert error.message == "entry 1: fullUrl repeats the one of entry 0"


def test_parse_allows_a_repeated_full_url_for_different_versions() -> None:
    def version(number: str) -> dict[str, Any]:
        return entry("GET", "Patient/1", patient(meta={"versionId": number}), fullUrl=UUID_A)

    assert len(parse("batch", version("1"), version("2"))) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (entry("PUT", "Patient/1", patient(id="1")), entry("DELETE", "Patient/1")),
        (entry("PATCH", "Patient/1", {"resourceType": "Binary"}), entry("DELETE", "Patient/1")),
        (entry("DELETE", "Patient?b=2&a=1"), entry("PUT", "Patient?a=1&b=2", patient())),
        (
            entry("POST", "Patient", patient(), ifNoneExist="identifier=x"),
            entry("PUT", "Patient?identifier=x", patient()),
        ),
    ],
)
def test_a_transaction_refuses_two_writes_to_one_resource(first: Any, second: Any) -> None:
    error = fails(bundle("transaction", first, second))
    assert error.message == "entry 1: the transaction changes the resource of entry 0 again"
    # A batch processes each entry on its own: the same pair is allowed there.
    assert len(parse("batch", first, second)) == 2


def test_a_transaction_may_read_what_it_writes_and_create_twice() -> None:
    parsed = parse(
        "transaction",
        entry("PUT", "Patient/1", patient(id="1")),
        entry("GET", "Patient/1"),
        entry("POST", "Patient", patient()),
        entry("POST", "Patient", patient()),
    )
    assert len(parsed) == 4


def test_processing_order_is_delete_post_put_patch_then_reads() -> None:
    parsed = parse(
        "transaction",
        entry("GET", "Patient/a"),
        entry("PUT", "Patient/b", patient(id="b")),
        entry("POST", "Patient", patient()),
        entry("HEAD", "Patient/c"),
        entry("DELETE", "Patient/d"),
        entry("PATCH", "Patient/e", {"resourceType": "Parameters"}),
        entry("POST", "Observation", {"resourceType": "Observation"}),
        entry("DELETE", "Patient/f"),
    )
    ordered = processing_order(parsed)
    assert [e.index for e in ordered] == [4, 7, 2, 6, 1, 5, 0, 3]
    assert [e.index for e in parsed] == list(range(8))


# --- references -------------------------------------------------------------------------


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{UUID_A}">{UUID_A}</a>'
            f" and {UUID_A}0 and urn:oid:1.2.3.4</div>",
        },
        "contained": [
            {
                "resourceType": "Provenance",
                "id": "p",
                "target": [{"reference": UUID_A}, {"reference": "urn:oid:1.2.3"}],
                "text": {"status": "generated", "div": f"<div>{UUID_B}</div>"},
            }
        ],
        "subject": {"reference": UUID_A, "display": UUID_A},
        "performer": [{"reference": UUID_B}, {"reference": "Practitioner/kept"}],
        "code": {"text": UUID_A},
        "valueQuantity": {"value": Decimal("72.50")},
        "extension": [
            {
                "url": UUID_A,
                "valueReference": {"reference": "Patient?identifier=http://x|1&active=true"},
            }
        ],
    }


def test_rewrite_replaces_references_at_every_depth_and_nothing_else() -> None:
    original = observation()
    before = copy.deepcopy(original)
    mapping = {
        UUID_A: "Patient/new-a",
        UUID_B: "Practitioner/new-b",
        "urn:oid:1.2.3": "Device/d",
        "Patient?identifier=http://x|1&active=true": "Patient/found",
    }
    result = rewrite_references(original, mapping)
    assert original == before
    assert result["subject"] == {"reference": "Patient/new-a", "display": UUID_A}
    assert result["performer"] == [
        {"reference": "Practitioner/new-b"},
        {"reference": "Practitioner/kept"},
    ]
    assert result["contained"][0]["target"] == [
        {"reference": "Patient/new-a"},
        {"reference": "Device/d"},
    ]
    assert result["extension"][0] == {
        "url": UUID_A,
        "valueReference": {"reference": "Patient/found"},
    }
    assert result["code"] == {"text": UUID_A}
    assert result["valueQuantity"]["value"] == Decimal("72.50")


def test_rewrite_replaces_whole_placeholders_in_narratives() -> None:
    result = rewrite_references(
        observation(), {UUID_A: "Patient/new-a", UUID_B: "Practitioner/b", "urn:oid:1.2.3": "D/d"}
    )
    div = result["text"]["div"]
    assert '<a href="Patient/new-a">Patient/new-a</a>' in div
    assert f"{UUID_A}0" in div  # a longer token that merely starts with the key
    assert "urn:oid:1.2.3.4" in div
    assert result["contained"][0]["text"]["div"] == "<div>Practitioner/b</div>"


def test_rewrite_matches_escaped_keys_in_narratives_and_shares_the_unchanged() -> None:
    resource = {
        "resourceType": "Basic",
        "text": {"status": "generated", "div": "<div>Patient?a=1&amp;b=2</div>"},
        "extension": [{"url": "x", "valueString": "s"}],
    }
    result = rewrite_references(resource, {"Patient?a=1&b=2": "Patient/p"})
    assert result["text"]["div"] == "<div>Patient/p</div>"
    assert resource["text"]["div"] == "<div>Patient?a=1&amp;b=2</div>"  # input unchanged
    assert result["text"] is not resource["text"]
    # What did not change is shared, not copied: a bundle of thousands stays cheap.
    assert result["extension"] is resource["extension"]
    assert rewrite_references(resource, {}) is resource


def test_rewrite_refuses_a_resource_nested_beyond_reason() -> None:
    deep: dict[str, Any] = {"resourceType": "Basic"}
    node = deep
    for _ in range(300):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(RempartError) as caught:
        rewrite_references(deep, {})
    assert caught.value.category is Category.INCORRECT
    with pytest.raises(RempartError):
        unresolved_placeholders(deep)


def test_unresolved_placeholders_lists_urns_once_in_order() -> None:
    assert unresolved_placeholders(observation()) == [UUID_A, "urn:oid:1.2.3", UUID_B]
    rewritten = rewrite_references(observation(), {UUID_A: "Patient/a"})
    assert unresolved_placeholders(rewritten) == ["urn:oid:1.2.3", UUID_B]
    assert unresolved_placeholders(patient()) == []


def test_conditional_references_are_found_at_any_depth() -> None:
    resource = observation()
    resource["focus"] = [{"reference": "Condition?code=abc"}, {"reference": "Condition?code=abc"}]
    resource["hasMember"] = [{"reference": "Observation/1"}, {"reference": "?x=1"}]
    assert conditional_references(resource) == [
        "Patient?identifier=http://x|1&active=true",
        "Condition?code=abc",
    ]
    assert conditional_references(patient()) == []


# --- responses ----------------------------------------------------------------------------


def test_entry_response_carries_status_text_and_only_given_fields() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": []}
    created = entry_response(
        201,
        location="Patient/1/_history/1",
        etag='W/"1"',
        last_modified="2024-01-01T00:00:00Z",
        resource=patient(id="1"),
    )
    assert created == {
        "response": {
            "status": "201 Created",
            "location": "Patient/1/_history/1",
            "etag": 'W/"1"',
            "lastModified": "2024-01-01T00:00:00Z",
        },
        "resource": patient(id="1"),
    }
    assert entry_response(404, outcome=outcome) == {
        "response": {"status": "404 Not Found", "outcome": outcome}
    }
    assert entry_response(204) == {"response": {"status": "204 No Content"}}


def test_response_bundle_keeps_the_order_it_is_given() -> None:
    responses = [entry_response(200), entry_response(201)]
    assert response_bundle("transaction", responses) == {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": responses,
    }
    assert response_bundle("batch", [])["type"] == "batch-response"
    with pytest.raises(ValueError):
        response_bundle("history", [])  # type: ignore[arg-type]


# --- the official examples ------------------------------------------------------------------


def _official(kind: str) -> list[dict[str, Any]]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"the official FHIR R4 examples are not in {EXAMPLES}")
    found = []
    for path in sorted(EXAMPLES.glob("Bundle-*.json")):
        document = json.loads(path.read_text("utf-8"), parse_float=Decimal)
        if document.get("type") == kind:
            found.append(document)
    if not found:
        pytest.skip(f"no official {kind} Bundle example in {EXAMPLES}")
    return found


def test_the_official_transaction_examples_parse_under_their_base() -> None:
    for document in _official("transaction"):
        # Their request urls are absolute: the base they were written for is the
        # part of the first url before its resource type.
        first = document["entry"][0]["request"]["url"]
        base = first[: first.index("/" + document["entry"][0]["resource"]["resourceType"])]
        kind, parsed = parse_bundle(document, max_entries=1000, base=base)
        assert kind == "transaction"
        assert len(parsed) == len(document["entry"])
        for item, found in zip(document["entry"], parsed, strict=True):
            assert found.type == item["resource"]["resourceType"]
            assert found.id == item["resource"]["id"]
            assert found.full_url == item["fullUrl"]
        fails(document)  # without the base, absolute urls are refused


def test_the_official_batch_example_parses() -> None:
    for document in _official("batch"):
        kind, parsed = parse_bundle(document, max_entries=1000)
        assert kind == "batch"
        assert all(found.method == "GET" and found.type for found in parsed)
        assert all(not found.url.startswith("/") for found in parsed)
