"""What FHIR R4 search returns (§3.1.1.5 to §3.1.1.7), checked by hand against small data.

Includes and reverse includes (search.mode match/include), sorting, paging through
signed ``next`` links (also while others write), totals and summaries, POST search,
system-level and compartment search, ``$everything``, and the handling of unknown
parameters (lenient by default, ``Prefer: handling=strict``), through the real ASGI app
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

FHIR = "application/fhir+json"
LOINC = "http://loinc.org"
SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")
Params = list[tuple[str, str]]


def store(client: TestClient, *resources: dict[str, Any]) -> None:
    for resource in resources:
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        response = client.put(path, content=json.dumps(resource), headers={"content-type": FHIR})
        assert response.status_code in (200, 201), response.text


def search(client: TestClient, path: str, params: Params, **headers: str) -> dict[str, Any]:
    response = client.get(f"/fhir{path}", params=tuple(params), headers=headers)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


def entries(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """``Type/id`` of the entries in ``mode``, in bundle order."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def next_link(bundle: dict[str, Any]) -> str | None:
    """The ``next`` link as a path and query on this server, or None on the last page."""
    for link in bundle.get("link", []):
        if link["relation"] == "next":
            parts = urlsplit(link["url"])
            return f"{parts.path}?{parts.query}"
    return None


def all_pages(client: TestClient, first: dict[str, Any]) -> list[list[str]]:
    pages, bundle = [entries(first)], first
    while (link := next_link(bundle)) is not None:
        assert len(pages) < 50, "the next links never end"
        response = client.get(link)
        assert response.status_code == 200, response.text
        bundle = response.json()
        pages.append(entries(bundle))
    return pages


def patient(id_: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, **fields}


def observation(id_: str, **fields: Any) -> dict[str, Any]:
    code = {"coding": [{"system": LOINC, "code": "8867-4"}]}
    return {"resourceType": "Observation", "id": id_, "status": "final", "code": code, **fields}


def encounter(id_: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": id_,
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": subject},
    }


# p1 (gp: dr) has encounter e1 and observation o1 (in e1); p2 has e2 and o2 (in e2);
# o4 is about p2 but performed by p1, which puts it in p1's compartment too.
CLINIC = [
    {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Whoever"}]},
    patient(
        "p1", name=[{"family": "Alpha"}], generalPractitioner=[{"reference": "Practitioner/dr"}]
    ),
    patient("p2", name=[{"family": "Beta"}]),
    encounter("e1", "Patient/p1"),
    encounter("e2", "Patient/p2"),
    observation("o1", subject={"reference": "Patient/p1"}, encounter={"reference": "Encounter/e1"}),
    observation("o2", subject={"reference": "Patient/p2"}, encounter={"reference": "Encounter/e2"}),
    observation("o4", subject={"reference": "Patient/p2"}, performer=[{"reference": "Patient/p1"}]),
]


# --- _include and _revinclude (§3.1.1.5.4) ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "included"),
    [
        # o1.subject is p1.
        ("/Observation", [("_id", "o1"), ("_include", "Observation:subject")], {"Patient/p1"}),
        (
            "/Observation",
            [("_id", "o1"), ("_include", "Observation:subject:Patient")],
            {"Patient/p1"},
        ),
        ("/Observation", [("_id", "o1"), ("_include", "Observation:subject:Group")], set()),
        # o1 refers to p1 (subject) and e1 (encounter), nothing else.
        (
            "/Observation",
            [("_id", "o1"), ("_include", "Observation:*")],
            {"Patient/p1", "Encounter/e1"},
        ),
        # Without :iterate, Patient:general-practitioner applies to the matches only
        # (Observations), so dr is not reached; with it, p1's gp dr is.
        (
            "/Observation",
            [
                ("_id", "o1"),
                ("_include", "Observation:subject"),
                ("_include", "Patient:general-practitioner"),
            ],
            {"Patient/p1"},
        ),
        (
            "/Observation",
            [
                ("_id", "o1"),
                ("_include", "Observation:subject"),
                ("_include:iterate", "Patient:general-practitioner"),
            ],
            {"Patient/p1", "Practitioner/dr"},
        ),
        # Only o1 has p1 as subject (o4 has p1 as performer).
        ("/Patient", [("_id", "p1"), ("_revinclude", "Observation:subject")], {"Observation/o1"}),
        ("/Patient", [("_id", "p1"), ("_revinclude", "Observation:performer")], {"Observation/o4"}),
        # e1 is p1's encounter; o1 points at e1.
        (
            "/Patient",
            [
                ("_id", "p1"),
                ("_revinclude", "Encounter:subject"),
                ("_revinclude:iterate", "Observation:encounter"),
            ],
            {"Encounter/e1", "Observation/o1"},
        ),
    ],
)
def test_include_and_revinclude(
    client: TestClient, path: str, params: Params, included: set[str]
) -> None:
    store(client, *CLINIC)
    bundle = search(client, path, params)
    assert entries(bundle) == [f"{path[1:]}/{params[0][1]}"]
    assert len(entries(bundle, "include")) == len(set(entries(bundle, "include")))
    assert set(entries(bundle, "include")) == included


# --- _sort (§3.1.1.6.1) ----------------------------------------------------------------

SORTABLE = [
    patient("adams80", name=[{"family": "Adams"}], birthDate="1980-01-01"),
    patient("baker90", name=[{"family": "Baker"}], birthDate="1990-05-05"),
    patient("clark90", name=[{"family": "Clark"}], birthDate="1990-05-05"),
    patient("adams70", name=[{"family": "Adams"}], birthDate="1970-01-01"),
]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        # Newest first; the two 1990-05-05 births by family, Baker before Clark.
        ("-birthdate,family", ["baker90", "clark90", "adams80", "adams70"]),
        ("family,birthdate", ["adams70", "adams80", "baker90", "clark90"]),
        ("family,-birthdate", ["adams80", "adams70", "baker90", "clark90"]),
        ("birthdate", ["adams70", "adams80", "baker90", "clark90"]),
        ("_id", ["adams70", "adams80", "baker90", "clark90"]),
        ("-_id", ["clark90", "baker90", "adams80", "adams70"]),
    ],
)
def test_sort(client: TestClient, sort: str, expected: list[str]) -> None:
    store(client, *SORTABLE)
    found = [ref.split("/")[1] for ref in entries(search(client, "/Patient", [("_sort", sort)]))]
    if sort == "birthdate":  # the two 1990 births tie: either order is right
        assert found[:2] == expected[:2] and set(found[2:]) == set(expected[2:])
    else:
        assert found == expected


# --- paging, totals, summaries (§3.1.1.6.3, §3.1.1.6.4, §3.1.1.6.6, §3.1.1.6.7) -----

MANY = [patient(f"pg{n:02}", gender="female" if n % 2 else "male") for n in range(23)]


def test_paging_yields_each_match_exactly_once(client: TestClient) -> None:
    store(client, *MANY)
    pages = all_pages(client, search(client, "/Patient", [("_count", "5")]))
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    flat = [ref for page in pages for ref in page]
    assert sorted(flat) == sorted(f"Patient/{p['id']}" for p in MANY)


def test_paging_keeps_the_query(client: TestClient) -> None:
    # pg01, pg03, ..., pg21 are female: 11 of them.
    store(client, *MANY)
    first = search(client, "/Patient", [("gender", "female"), ("_count", "4")])
    flat = [ref for page in all_pages(client, first) for ref in page]
    assert sorted(flat) == [f"Patient/pg{n:02}" for n in range(1, 23, 2)]


def test_a_tampered_next_link_is_refused(client: TestClient) -> None:
    store(client, *MANY)
    link = next_link(search(client, "/Patient", [("_count", "5")]))
    assert link is not None
    parts = urlsplit(link)
    query = [(k, _tamper(v) if k not in ("_count",) else v) for k, v in parse_qsl(parts.query)]
    response = client.get(f"{parts.path}?{urlencode(query)}")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def _tamper(value: str) -> str:
    # The first character, not the last: base64's last character may carry padding bits.
    return ("B" if value[0] == "A" else "A") + value[1:] if value else "A"


def test_total_and_summary_count(client: TestClient) -> None:
    store(client, *MANY)
    bundle = search(client, "/Patient", [("_total", "accurate"), ("_count", "5")])
    assert bundle["total"] == 23 and len(entries(bundle)) == 5
    counted = search(client, "/Patient", [("_summary", "count"), ("gender", "female")])
    assert counted["total"] == 11 and not counted.get("entry")


def _subsetted(resource: dict[str, Any]) -> bool:
    tags = resource.get("meta", {}).get("tag", [])
    return any((t.get("system"), t.get("code")) == SUBSETTED for t in tags)


def test_summary_true_keeps_summary_elements(client: TestClient) -> None:
    # Patient.contact and Patient.photo are not summary elements; name, gender and
    # birthDate are. Narrative is not part of the summary.
    store(
        client,
        patient(
            "s1",
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            },
            name=[{"family": "Summary"}],
            gender="male",
            birthDate="1970-01-01",
            contact=[{"name": {"family": "Kin"}}],
            photo=[{"contentType": "image/gif", "data": "R0lGODlhAQABAAAAACw="}],
        ),
    )
    (entry,) = search(client, "/Patient", [("_summary", "true")])["entry"]
    resource = entry["resource"]
    assert _subsetted(resource)
    assert {"name", "gender", "birthDate"} <= set(resource)
    assert not {"contact", "photo", "text"} & set(resource)


def test_elements_keeps_only_those_asked(client: TestClient) -> None:
    identifier = [{"system": "http://example.org/mrn", "value": "42"}]
    store(client, patient("e1", identifier=identifier, name=[{"family": "Kept"}], gender="male"))
    (entry,) = search(client, "/Patient", [("_elements", "identifier")])["entry"]
    resource = entry["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "identifier"}
    assert resource["identifier"] == identifier and _subsetted(resource)


# --- POST search, system and compartment search, $everything (§3.1.1.1, §3.1.0.10) ---


def test_post_search_answers_as_get(client: TestClient) -> None:
    store(client, *MANY)
    params = [("gender", "female"), ("_id", "pg01,pg02,pg03"), ("_sort", "_id")]
    posted = client.post(
        "/fhir/Patient/_search",
        content=urlencode(params),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    # pg01 and pg03 are female, pg02 is male.
    assert entries(posted.json()) == entries(search(client, "/Patient", params))
    assert entries(posted.json()) == ["Patient/pg01", "Patient/pg03"]


def test_system_search(client: TestClient) -> None:
    store(client, *CLINIC)
    both = search(client, "", [("_type", "Patient,Observation"), ("_id", "p1,o1,e1")])
    assert set(entries(both)) == {"Patient/p1", "Observation/o1"}  # e1 is an Encounter
    assert set(entries(search(client, "", [("_id", "e2")]))) == {"Encounter/e2"}


def test_compartment_search(client: TestClient) -> None:
    store(client, *CLINIC)
    # Observation is in the Patient compartment through subject and performer.
    observations = search(client, "/Patient/p1/Observation", [])
    assert set(entries(observations)) == {"Observation/o1", "Observation/o4"}
    narrowed = search(client, "/Patient/p1/Observation", [("performer", "Patient/p1")])
    assert set(entries(narrowed)) == {"Observation/o4"}
    everything = set(entries(search(client, "/Patient/p1/*", [])))
    # Whether the patient itself is listed is left open; dr, p2, e2 and o2 are not in.
    assert {"Observation/o1", "Observation/o4", "Encounter/e1"} <= everything
    assert everything <= {"Observation/o1", "Observation/o4", "Encounter/e1", "Patient/p1"}


def test_patient_everything(client: TestClient) -> None:
    store(client, *CLINIC)
    response = client.get("/fhir/Patient/p1/$everything")
    assert response.status_code == 200, response.text
    found = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in response.json()["entry"]
    }
    assert {"Patient/p1", "Observation/o1", "Observation/o4", "Encounter/e1"} <= found
    # p2's own encounter and observation are nothing to p1.
    assert not {"Encounter/e2", "Observation/o2"} & found


# --- unknown parameters (§3.1.1.3.4 handling) ---------------------------------------------


def test_unknown_parameter_is_reported_and_ignored_by_default(client: TestClient) -> None:
    store(client, *CLINIC)
    bundle = search(client, "/Patient", [("no-such-parameter", "x"), ("family", "alpha")])
    assert entries(bundle) == ["Patient/p1"]
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert [o["resourceType"] for o in outcomes] == ["OperationOutcome"]


def test_unknown_parameter_is_refused_when_strict(client: TestClient) -> None:
    store(client, *CLINIC)
    response = client.get(
        "/fhir/Patient",
        params=[("no-such-parameter", "x")],
        headers={"prefer": "handling=strict"},
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


# --- paging while others write ------------------------------------------------------------


def test_paging_under_concurrent_writes(client: TestClient) -> None:
    before = [patient(f"c{n:02}", active=True) for n in range(30)]
    store(client, *before)
    first = search(client, "/Patient", [("_count", "10")])
    assert len(entries(first)) == 10
    # Every resource gets a new version (a new lastUpdated), and new ones arrive.
    store(client, *(patient(p["id"], active=False) for p in before))
    store(client, *(patient(f"new{n}") for n in range(5)))
    flat = [ref for page in all_pages(client, first) for ref in page]
    assert len(flat) == len(set(flat)), "a resource was returned twice"
    assert {f"Patient/{p['id']}" for p in before} <= set(flat), "a resource was skipped"
