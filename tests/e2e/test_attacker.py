"""OWASP API1 (broken object-level authorization), end to end: a patient who holds a
valid token for their own record tries every path of the FHIR API to reach another
patient's records, on a real ``rempart serve`` process over HTTP, on SQLite and on
PostgreSQL.

Two properties are checked everywhere (``attacker_kit.py`` has the world and the
collectors):

* nothing of the victim comes back: no resource, Bundle entry, included resource,
  ``fullUrl``, ``Location``, OperationOutcome text or count (``total``), on any page;
* a record out of reach answers exactly like one that does not exist: same status,
  same body, same headers, the ids blanked. The victim's existence is not revealed.

After every write attempt, the victim's records, version by version, are unchanged.
Out-of-reach and unknown reads run the same query (``reach_sql.latest_within``), so
there is no timing test: a timed assertion would only measure the machine.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from attacker_kit import (
    ATTACKER,
    FHIR_JSON,
    HIDDEN,
    HIV,
    SECRET_CODE,
    SNOMED,
    VICTIM,
    VIP,
    World,
    body_of,
    keys_in,
    next_link,
    observation,
    pages,
    revealed,
    shape,
)
from smart_flow import PATIENT_SCOPES, Flow, Smart

from conftest import ServerProcess
from rempart.config import Settings, StorageSettings

ATTACKER_SCOPES = ["patient/*.rs", "patient/*.cruds"]
PATCH = {"content-type": "application/json-patch+json"}
LABELLED_VICTIM = {"resourceType": "Patient", "id": VICTIM, "meta": {"security": VIP}}
VICTIMS_VITAL_TAKEN = observation(f"{VICTIM}-vital", ATTACKER, "vital-signs")
"""The victim's vital sign, rewritten as the attacker's own."""
COMPARTMENT_TYPES = [
    "Patient", "Observation", "Condition", "Encounter", "MedicationRequest",
    "DiagnosticReport", "AllergyIntolerance", "FamilyMemberHistory", "Group", "List",
]  # fmt: skip


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A seeded server per backend, and the victim's records as they were seeded."""
    data = tmp_path_factory.mktemp(f"attacker-{request.param}") / "data"
    schema = f"rempart_test_{secrets.token_hex(6)}"
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    storage = StorageSettings(data_dir=data, database_url=url, postgres_schema=schema, pool_size=4)
    server = ServerProcess(Settings(storage=storage)).start()
    try:
        world = World(server, request.param)
        world.seed()
        world.before = world.snapshot()
        yield world
    finally:
        server.stop()
        if url is not None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=ATTACKER_SCOPES)
def attacker(world: World, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    with world.attacker(request.param) as client:
        yield client


@pytest.fixture
def writer(world: World) -> Iterator[httpx.Client]:
    """The attacker with write permissions; the victim's records checked afterwards."""
    with world.attacker("patient/*.cruds") as client:
        yield client
    assert world.snapshot() == world.before, "a write attempt changed the victim's records"


# Helpers --------------------------------------------------------------------------


def all_pages(client: httpx.Client, first: httpx.Response) -> list[httpx.Response]:
    answers = list(pages(client, first))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return answers


def nothing_revealed(client: httpx.Client, first: httpx.Response) -> set[str]:
    """Keys of every resource on every page; asserts none of them is the victim's."""
    answers = all_pages(client, first)
    leaks = set().union(*(revealed(a) for a in answers))
    assert not leaks, f"{first.request.url} revealed {sorted(leaks)}"
    return set().union(*(keys_in(a) for a in answers))


def matches(answer: httpx.Response) -> list[str]:
    entries = (body_of(answer) or {}).get("entry", [])
    return [e["fullUrl"] for e in entries if e.get("search", {}).get("mode") == "match"]


def like_unknown(
    client: httpx.Client, method: str, path: str, victim_id: str, world: World, **kwargs: Any
) -> list[str]:
    """Runs ``path`` with the victim's id, then with an unknown one in its place;
    a description of each difference between the two answers (none expected)."""
    unknown = world.unknown()

    def run(id_: str) -> httpx.Response:
        content = kwargs.get("content")
        changed = {**kwargs, "content": content.replace(victim_id, id_)} if content else kwargs
        headers = {k: v.replace(victim_id, id_) for k, v in changed.pop("headers", {}).items()}
        return client.request(method, path.replace(victim_id, id_), headers=headers, **changed)

    victim, nobody = run(victim_id), run(unknown)
    differences = _differences(shape(victim, victim_id), shape(nobody, unknown))
    if revealed(victim):
        differences.append(f"revealed {sorted(revealed(victim))}")
    return [f"{method} {path}: {difference}" for difference in differences]


def _differences(victim: tuple[Any, ...], nobody: tuple[Any, ...]) -> list[str]:
    (status, body, headers), (other_status, other_body, other_headers) = victim, nobody
    found = []
    if status != other_status:
        found.append(f"status {status} for the victim, {other_status} for an unknown id")
    if body != other_body:
        found.append(f"body {body} for the victim, {other_body} for an unknown id")
    for name in sorted(set(headers) | set(other_headers)):
        if headers.get(name) != other_headers.get(name):
            found.append(f"header {name}: {headers.get(name)!r} / {other_headers.get(name)!r}")
    return found


def own_count(world: World, type_: str) -> int:
    with world.system() as system:
        answer = system.get(f"Patient/{ATTACKER}/{type_}", params={"_summary": "count"})
    total: int = answer.json()["total"]
    return total


def versions_of(world: World, key: str) -> list[int]:
    return [int(e["response"]["etag"][3:-1]) for e in world.before[key]]


# Reads, versions, history ---------------------------------------------------------


def test_reads_answer_like_unknown_ids(world: World, attacker: httpx.Client) -> None:
    differences = []
    for key in sorted(HIDDEN):
        type_, id_ = key.split("/")
        differences += like_unknown(attacker, "GET", f"{type_}/{id_}", id_, world)
        differences += like_unknown(attacker, "GET", f"{type_}/{id_}/_history", id_, world)
        differences += like_unknown(attacker, "HEAD", f"{type_}/{id_}", id_, world)
        conditional = {"if-none-match": "*", "if-modified-since": "Sat, 01 Jan 2050 00:00:00 GMT"}
        differences += like_unknown(attacker, "GET", key, id_, world, headers=conditional)
    assert not differences, "\n".join(differences)
    assert attacker.get(f"Patient/{ATTACKER}").status_code == 200  # the token works


def test_every_version_answers_like_an_unknown_id(world: World, attacker: httpx.Client) -> None:
    differences = []
    for key in sorted(HIDDEN):
        type_, id_ = key.split("/")
        for version in versions_of(world, key):
            path = f"{type_}/{id_}/_history/{version}"
            differences += like_unknown(attacker, "GET", path, id_, world)
    assert not differences, "\n".join(differences)


def test_a_record_moved_to_the_attacker_hides_its_earlier_versions(
    world: World, attacker: httpx.Client
) -> None:
    """``Observation/moved`` was the victim's (version 1), then the attacker's."""
    first = attacker.get("Observation/moved/_history/1")
    unknown = attacker.get(f"Observation/{world.unknown()}/_history/1")
    assert (first.status_code, first.json()) == (unknown.status_code, unknown.json())
    assert attacker.get("Observation/moved/_history/2").status_code == 200
    history = attacker.get("Observation/moved/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"']


@pytest.mark.parametrize(
    "path",
    ["_history", "Observation/_history", "Patient/_history", "Condition/_history",
     "Group/_history", "List/_history", "DiagnosticReport/_history"],
)  # fmt: skip
@pytest.mark.parametrize(
    "params",
    [
        {"_count": "2"},
        {"_since": "2000-01-01T00:00:00Z", "_count": "3"},
        {},
        {"_at": time.strftime("%Y")},
    ],
)
def test_histories_hold_only_the_attackers_versions(
    world: World, attacker: httpx.Client, path: str, params: dict[str, str]
) -> None:
    keys = nothing_revealed(attacker, attacker.get(path, params=params))
    if path in ("_history", "Observation/_history"):
        assert f"Observation/{ATTACKER}-vital" in keys  # the attacker's own, both versions


def test_own_history_shows_every_own_version(attacker: httpx.Client) -> None:
    history = attacker.get(f"Observation/{ATTACKER}-vital/_history").json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']


# Searches -------------------------------------------------------------------------

TARGETED = [
    ("Observation", {"_id": f"{VICTIM}-vital,{VICTIM}-lab"}),
    ("Observation", {"subject": f"Patient/{VICTIM}"}),
    ("Observation", {"patient": VICTIM}),
    ("Observation", {"subject:Patient.name": "Victimova"}),
    ("Observation", {"identifier": "urn:test:owner|victim-secret"}),
    ("Observation", {"code": SECRET_CODE}),
    ("Condition", {"code": f"{SNOMED}|{HIV}"}),
    ("DiagnosticReport", {"result:Observation.subject": f"Patient/{VICTIM}"}),
    ("Patient", {"_id": VICTIM}),
    ("Patient", {"name": "Victimova"}),
    ("Patient", {"birthdate": "1970-01-02"}),
    ("Patient", {"_has:Condition:patient:code": f"{SNOMED}|{HIV}"}),
    ("Group", {"member": f"Patient/{VICTIM}"}),
    ("FamilyMemberHistory", {"patient": VICTIM}),
    ("", {"_id": f"{VICTIM},{VICTIM}-vital,victim-group,victim-list"}),
]
"""Searches whose only matches are the victim's: the attacker finds nothing."""

ORACLES = [
    # The attacker's own Observation performed by the victim, chained to her name.
    ("Observation", {"performer:Patient.name": "Victimova"}),
    # The attacker's own Observation whose focus is the victim, chained to her birth date.
    ("Observation", {"focus:Patient.birthdate": "1970-01-02"}),
    # The attacker's Patient, found through the victim's Observation about him.
    ("Patient", {"_has:Observation:focus:code": SECRET_CODE}),
    # Does the victim have HIV? Through the attacker's shared Observation.
    ("Observation", {"performer:Patient._has:Condition:patient:code": f"{SNOMED}|{HIV}"}),
    # What does a List the attacker cannot read hold? (It holds his own vital sign.)
    ("Observation", {"_list": "victim-list"}),
]
"""Searches that match the attacker's own records, but only because of what the
victim's records say: a yes/no answer about the victim, one question at a time."""

BROAD = [
    (
        "Observation",
        {"_include": ["Observation:subject", "Observation:performer", "Observation:focus"]},
    ),
    ("Observation", {"_include": "*", "_count": "2"}),
    (
        "DiagnosticReport",
        {"_include": "DiagnosticReport:result", "_include:iterate": "Observation:performer"},
    ),
    (
        "Patient",
        {"_revinclude": ["Observation:subject", "Observation:focus", "Group:member", "List:item"]},
    ),
    ("Patient", {"_revinclude": "*", "_revinclude:iterate": "DiagnosticReport:result"}),
    ("Patient", {"_include": "Patient:link", "_revinclude:iterate": "Observation:performer"}),
    ("Observation", {"_sort": "-date,subject", "_count": "2", "_total": "accurate"}),
    ("Observation", {"_elements": "subject,performer,focus", "_count": "3"}),
    ("Observation", {"_summary": "true"}),
    ("", {"_type": "Patient,Observation,Condition,Group,List,FamilyMemberHistory", "_count": "3"}),
    ("", {"_count": "4", "_total": "accurate"}),
    (f"Patient/{VICTIM}/*", {}),
    (f"Patient/{VICTIM}/Observation", {"_include": "Observation:subject"}),
    (f"Patient/{ATTACKER}/*", {"_count": "3", "_revinclude": "Observation:focus"}),
    ("Encounter", {"_include": ["Encounter:patient", "Encounter:practitioner"]}),
    ("MedicationRequest", {"_include": "MedicationRequest:requester"}),
]
"""Searches that find the attacker's own records; nothing of the victim may come along."""


def _search(client: httpx.Client, path: str, params: dict[str, Any], form: bool) -> httpx.Response:
    if not form:
        return client.get(path, params=params)
    target = f"{path}/_search" if path else "_search"
    return client.post(target, data=params)


def _label(case: tuple[str, dict[str, Any]]) -> str:
    return f"{case[0] or '[base]'}?{'&'.join(case[1])}"


def _both_forms(cases: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Each case as GET and as POST ``_search`` (compartment searches have no POST form)."""
    return [
        pytest.param(case, form, id=f"{'POST' if form else 'GET'}-{_label(case)}")
        for case in cases
        for form in (False, True)
        if not (form and "/" in case[0])
    ]


def _finds_nothing(
    world: World, client: httpx.Client, path: str, params: dict[str, Any], form: bool
) -> None:
    with world.system() as system:
        assert matches(_search(system, path, params, form)), "the case finds nothing at all"
    answer = _search(client, path, {**params, "_total": "accurate"}, form)
    nothing_revealed(client, answer)
    assert matches(answer) == []
    assert answer.json()["total"] == 0


@pytest.mark.parametrize(("case", "form"), _both_forms(TARGETED))
def test_searches_for_the_victim_find_nothing(
    world: World, attacker: httpx.Client, case: tuple[str, dict[str, Any]], form: bool
) -> None:
    _finds_nothing(world, attacker, *case, form)


@pytest.mark.parametrize(("case", "form"), _both_forms(ORACLES))
def test_chains_answer_no_question_about_the_victim(
    world: World, attacker: httpx.Client, case: tuple[str, dict[str, Any]], form: bool
) -> None:
    """A chain or ``_has`` must only follow references to records within reach."""
    _finds_nothing(world, attacker, *case, form)


@pytest.mark.parametrize(("case", "form"), _both_forms(BROAD))
def test_broad_searches_return_nothing_of_the_victim(
    attacker: httpx.Client, case: tuple[str, dict[str, Any]], form: bool
) -> None:
    nothing_revealed(attacker, _search(attacker, *case, form))


@pytest.mark.parametrize("type_", COMPARTMENT_TYPES)
def test_counts_are_the_attackers_own(world: World, attacker: httpx.Client, type_: str) -> None:
    own = own_count(world, type_)
    counted = attacker.get(type_, params={"_summary": "count"}).json()["total"]
    accurate = attacker.get(type_, params={"_total": "accurate", "_count": "1"}).json()["total"]
    assert counted == accurate == own
    if type_ in ("Patient", "Observation", "Condition"):
        assert own > 0


def test_system_search_counts_only_own_records(world: World, attacker: httpx.Client) -> None:
    own = sum(own_count(world, type_) for type_ in COMPARTMENT_TYPES)
    answer = attacker.get("", params={"_summary": "count", "_type": ",".join(COMPARTMENT_TYPES)})
    assert answer.json()["total"] == own


# $everything ----------------------------------------------------------------------


def test_everything_of_the_victim_answers_like_an_unknown_patient(
    world: World, attacker: httpx.Client
) -> None:
    differences = like_unknown(attacker, "GET", f"Patient/{VICTIM}/$everything", VICTIM, world)
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("params", [{}, {"_count": "3"}, {"_type": "Observation,Patient,Group"}])
def test_own_everything_stops_at_the_victim(attacker: httpx.Client, params: dict[str, str]) -> None:
    keys = nothing_revealed(
        attacker, attacker.get(f"Patient/{ATTACKER}/$everything", params=params)
    )
    assert "Observation/shared-performer" in keys


# Paging cursors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, params",
    [("Observation", {"_count": "2"}), ("", {"_count": "3", "_type": "Patient,Observation"}),
     ("Observation", {"_sort": "date", "_count": "2"}), ("_history", {"_count": "2"}),
     ("Observation/_history", {"_count": "2"}), (f"Patient/{VICTIM}/*", {"_count": "2"})],
)  # fmt: skip
def test_paging_links_of_the_system_give_the_attacker_nothing_more(
    world: World, attacker: httpx.Client, path: str, params: dict[str, str]
) -> None:
    with world.system() as system:
        link = next_link(system.get(path, params=params))
        assert link is not None
        mine = next_link(attacker.get(path, params=params))
        if mine is not None:  # and the other way round: a cursor is no capability
            assert system.get(mine).status_code == 200
    nothing_revealed(attacker, attacker.get(link))


# Conditional interactions ---------------------------------------------------------

OWN_NO_ID = json.dumps(
    {k: v for k, v in observation("x", ATTACKER, "vital-signs").items() if k != "id"}
)


CONDITIONAL = [
    pytest.param("PUT", f"Observation?_id={VICTIM}-vital", f"{VICTIM}-vital", OWN_NO_ID,
                 id="PUT Observation?_id"),
    pytest.param("PUT", f"Observation?subject=Patient/{VICTIM}", VICTIM, OWN_NO_ID,
                 id="PUT Observation?subject"),
    pytest.param("PUT", f"Observation?_id={VICTIM}-vital", f"{VICTIM}-vital",
                 json.dumps(VICTIMS_VITAL_TAKEN), id="PUT Observation?_id with the id in the body"),
    pytest.param("PUT", f"Patient?_id={VICTIM}", VICTIM,
                 json.dumps({"resourceType": "Patient", "id": VICTIM, "name": [{"family": "A"}]}),
                 id="PUT Patient?_id with the id in the body"),
    pytest.param("DELETE", f"Observation?_id={VICTIM}-vital", f"{VICTIM}-vital", None,
                 id="DELETE Observation?_id"),
    pytest.param("DELETE", f"Condition?subject=Patient/{VICTIM}", VICTIM, None,
                 id="DELETE Condition?subject"),
    pytest.param("PATCH", f"Observation?_id={VICTIM}-vital", f"{VICTIM}-vital",
                 json.dumps([{"op": "replace", "path": "/status", "value": "cancelled"}]),
                 id="PATCH Observation?_id"),
]  # fmt: skip


@pytest.mark.parametrize("method, path, victim_id, content", CONDITIONAL)
def test_conditional_writes_on_the_victim_answer_like_no_match(
    world: World, writer: httpx.Client, method: str, path: str, victim_id: str, content: str | None
) -> None:
    headers = PATCH if method == "PATCH" else FHIR_JSON
    differences = like_unknown(
        writer, method, path, victim_id, world, content=content, headers=headers
    )
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize(
    "condition",
    [f"_id={VICTIM}-vital", "identifier=urn:test:owner|victim-secret", f"subject=Patient/{VICTIM}"],
)
def test_conditional_create_does_not_reveal_a_victims_match(
    world: World, writer: httpx.Client, condition: str
) -> None:
    answers = []
    for criteria in (condition, f"_id={world.unknown()}"):
        headers = {**FHIR_JSON, "if-none-exist": criteria}
        answers.append(writer.post("Observation", content=OWN_NO_ID, headers=headers))
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    for answer in answers:
        assert not revealed(answer)
        assert answer.json()["subject"] == {"reference": f"Patient/{ATTACKER}"}


# Plain writes ---------------------------------------------------------------------


def test_writes_to_victim_ids_answer_like_unknown_ids(world: World, writer: httpx.Client) -> None:
    patch = json.dumps([{"op": "add", "path": "/language", "value": "fr"}])
    differences = []
    for key in sorted(HIDDEN):
        id_ = key.split("/")[1]
        differences += like_unknown(writer, "DELETE", key, id_, world)
        differences += like_unknown(writer, "PATCH", key, id_, world, content=patch, headers=PATCH)
    taken = json.dumps(VICTIMS_VITAL_TAKEN)
    path = f"Observation/{VICTIM}-vital"
    differences += like_unknown(
        writer, "PUT", path, f"{VICTIM}-vital", world, content=taken, headers=FHIR_JSON
    )
    assert not differences, "\n".join(differences)


def test_overwriting_the_labelled_victim_answers_like_an_unknown_id(
    world: World, writer: httpx.Client
) -> None:
    """The victim's Patient carries security labels; the attacker's body has none."""
    body = json.dumps({"resourceType": "Patient", "id": VICTIM, "name": [{"family": "A"}]})
    path = f"Patient/{VICTIM}"
    differences = like_unknown(writer, "PUT", path, VICTIM, world, content=body, headers=FHIR_JSON)
    assert not differences, "\n".join(differences)


def _forbidden(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert not revealed(answer)


def test_records_cannot_be_written_into_the_victims_compartment(writer: httpx.Client) -> None:
    about_victim = observation("x", VICTIM, "vital-signs")
    performed = observation(
        "x", ATTACKER, "vital-signs", performer=[{"reference": f"Patient/{VICTIM}"}]
    )
    for body in (about_victim, performed):
        _forbidden(writer.post("Observation", content=json.dumps(body), headers=FHIR_JSON))
        moved = {**body, "id": f"{ATTACKER}-lab"}
        _forbidden(
            writer.put(f"Observation/{ATTACKER}-lab", content=json.dumps(moved), headers=FHIR_JSON)
        )
    patch = [{"op": "replace", "path": "/subject/reference", "value": f"Patient/{VICTIM}"}]
    _forbidden(
        writer.patch(f"Observation/{ATTACKER}-lab", content=json.dumps(patch), headers=PATCH)
    )


def test_a_patient_cannot_set_security_labels(writer: httpx.Client) -> None:
    labelled = observation(
        f"{ATTACKER}-lab", ATTACKER, "laboratory", "preliminary", meta={"security": VIP}
    )
    _forbidden(
        writer.put(f"Observation/{ATTACKER}-lab", content=json.dumps(labelled), headers=FHIR_JSON)
    )
    _forbidden(writer.post("Observation", content=json.dumps(labelled), headers=FHIR_JSON))


def test_no_create_on_update_for_a_patient(world: World, writer: httpx.Client) -> None:
    id_ = world.unknown()
    body = json.dumps(observation(id_, ATTACKER, "vital-signs"))
    assert writer.put(f"Observation/{id_}", content=body, headers=FHIR_JSON).status_code == 404
    created = writer.post("Observation", content=body, headers=FHIR_JSON)
    assert created.status_code == 201, created.text  # the token can write its own


def test_a_record_shared_with_the_victim_cannot_be_deleted(
    world: World, writer: httpx.Client
) -> None:
    """The attacker's own Observation performed by the victim is the victim's too: a
    patient may neither rewrite it (links another patient) nor delete it."""
    refused = writer.delete("Observation/shared-performer")
    _forbidden(refused)
    with world.system() as system:
        assert system.get("Observation/shared-performer").status_code == 200


def test_a_read_only_token_writes_nothing(world: World) -> None:
    with world.attacker("patient/*.rs") as reader:
        for key in (f"Observation/{VICTIM}-vital", f"Observation/{ATTACKER}-vital"):
            answer = reader.delete(key)
            assert answer.status_code == 403
            assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert world.snapshot() == world.before


# Batch and transaction ------------------------------------------------------------


def _bundle(kind: str, entries: list[dict[str, Any]]) -> str:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})


def _entry(method: str, url: str, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"request": {"method": method, "url": url}}
    return entry if resource is None else {**entry, "resource": resource}


def _operation(type_: str, path: str) -> dict[str, Any]:
    """A FHIRPath Patch of one operation."""
    parts = [{"name": "type", "valueCode": type_}, {"name": "path", "valueString": path}]
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]}


BATCH = [
    _entry("GET", f"Patient/{VICTIM}"),
    _entry("GET", f"Observation/{VICTIM}-vital/_history/1"),
    _entry("GET", f"Observation/{VICTIM}-vital/_history"),
    _entry("GET", f"Observation?subject=Patient/{VICTIM}"),
    _entry("GET", f"Patient/{VICTIM}/$everything"),
    _entry("GET", f"Patient?_id={VICTIM}&_revinclude=Observation:subject"),
    _entry("DELETE", f"Patient/{VICTIM}"),
    _entry("PUT", f"Patient/{VICTIM}", LABELLED_VICTIM),
    _entry("PATCH", f"Patient/{VICTIM}", _operation("delete", "Patient.name")),
]


def _label_entries(entries: dict[str, Any] | list[dict[str, Any]]) -> str:
    entry = entries if isinstance(entries, dict) else entries[0]
    return f"{entry['request']['method']} {entry['request']['url']}"


@pytest.mark.parametrize("entry", BATCH, ids=_label_entries)
def test_batch_entries_answer_like_unknown_ids(
    world: World, attacker: httpx.Client, entry: dict[str, Any]
) -> None:
    content = _bundle("batch", [entry])
    differences = like_unknown(
        attacker, "POST", "", VICTIM, world, content=content, headers=FHIR_JSON
    )
    assert not differences, "\n".join(differences)


CONDITIONAL_FOCUS = {"focus": [{"reference": f"Patient?_id={VICTIM}"}]}
TRANSACTIONS = [
    [_entry("PUT", f"Observation/{VICTIM}-vital", VICTIMS_VITAL_TAKEN)],
    [_entry("PUT", f"Patient/{VICTIM}", LABELLED_VICTIM)],
    [_entry("DELETE", f"Observation/{VICTIM}-vital")],
    [_entry("PATCH", f"Patient/{VICTIM}", _operation("delete", "Patient.name"))],
    [_entry("PUT", f"Observation?_id={VICTIM}-vital", VICTIMS_VITAL_TAKEN)],
    [_entry("POST", "Observation", observation("x", ATTACKER, "survey") | CONDITIONAL_FOCUS)],
]


@pytest.mark.parametrize("touching", TRANSACTIONS, ids=_label_entries)
def test_transactions_touching_the_victim_fail_whole_like_unknown_ids(
    world: World, writer: httpx.Client, touching: list[dict[str, Any]]
) -> None:
    own = {"fullUrl": "urn:uuid:2b0a3c4e-0000-4000-8000-000000000001",
           "request": {"method": "POST", "url": "Observation"},
           "resource": observation("x", ATTACKER, "vital-signs")}  # fmt: skip
    before = own_count(world, "Observation")
    content = _bundle("transaction", [own, *touching])
    differences = like_unknown(
        writer, "POST", "", VICTIM, world, content=content, headers=FHIR_JSON
    )
    assert not differences, "\n".join(differences)
    assert own_count(world, "Observation") == before, "a failed transaction left a record"


# Narrow scopes --------------------------------------------------------------------


def test_a_single_type_scope_refuses_the_other_types(world: World) -> None:
    with world.attacker("patient/Observation.rs") as client:
        for path in (
            f"Patient/{ATTACKER}", f"Patient/{VICTIM}", f"Condition/{ATTACKER}-cond",
            f"Condition/{VICTIM}-cond", "Condition", f"Patient/{VICTIM}/$everything",
        ):  # fmt: skip
            answer = client.get(path)
            assert answer.status_code == 403, path
            assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
            assert not revealed(answer)
        keys = nothing_revealed(client, client.get("Observation", params={"_include": "*"}))
    assert f"Observation/{ATTACKER}-vital" in keys
    assert not {k for k in keys if not k.startswith("Observation/")}


def test_a_patient_scope_without_a_patient_reaches_nothing(world: World) -> None:
    with world.client(world.token("patient/*.cruds", fhir_user=f"Patient/{ATTACKER}")) as client:
        for path in (f"Patient/{ATTACKER}", "Observation", f"Patient/{ATTACKER}/$everything"):
            answer = client.get(path)
            assert answer.status_code == 403, path
            assert not revealed(answer)


def test_a_restricted_scope_sees_only_what_its_criteria_allow(world: World) -> None:
    with world.attacker("patient/Observation.rs?category=vital-signs") as client:
        keys = nothing_revealed(client, client.get("Observation"))
        differences = like_unknown(
            client, "GET", f"Observation/{ATTACKER}-lab", f"{ATTACKER}-lab", world
        )
        differences += like_unknown(
            client, "GET", f"Observation/{VICTIM}-vital", f"{VICTIM}-vital", world
        )
    with world.system() as system:
        own = system.get(f"Patient/{ATTACKER}/Observation", params={"category": "vital-signs"})
    assert keys == {f"Observation/{r['resource']['id']}" for r in own.json()["entry"]}
    assert f"Observation/{ATTACKER}-vital" in keys
    assert not differences, "\n".join(differences)


def test_a_user_scope_with_criteria_sees_every_final_observation_and_nothing_else(
    world: World,
) -> None:
    token = world.token("user/Observation.rs?status=final", fhir_user="Practitioner/doc")
    with world.client(token) as client:
        seen = set().union(*(keys_in(a) for a in all_pages(client, client.get("Observation"))))
        hidden = like_unknown(
            client, "GET", f"Observation/{ATTACKER}-lab", f"{ATTACKER}-lab", world
        )
    with world.system() as system:
        final = system.get("Observation", params={"status": "final", "_count": "500"}).json()
        every = system.get("Observation", params={"_summary": "count"}).json()["total"]
    assert seen == {f"Observation/{e['resource']['id']}" for e in final["entry"]}
    assert f"Observation/{VICTIM}-vital" in seen and 0 < len(seen) < every
    assert not hidden, "\n".join(hidden)


# The real login -------------------------------------------------------------------


def test_a_patient_logged_in_through_smart_launch_sees_only_their_record(world: World) -> None:
    smart = Smart(world.server)
    redirect = "http://127.0.0.1:8765/callback"
    smart.add_public_client("attack-app", redirect, PATIENT_SCOPES)
    user = smart.add_user(f"mallory-{secrets.token_hex(3)}", fhir_user=f"Patient/{ATTACKER}")
    flow = Flow(smart, "attack-app", redirect)
    try:
        tokens = flow.tokens(user)
    finally:
        flow.close()
    assert tokens["patient"] == ATTACKER
    with world.client(tokens["access_token"]) as client:
        keys = nothing_revealed(client, client.get("Observation", params={"_include": "*"}))
        differences = like_unknown(client, "GET", f"Patient/{VICTIM}", VICTIM, world)
    assert f"Observation/{ATTACKER}-vital" in keys
    assert not differences, "\n".join(differences)
