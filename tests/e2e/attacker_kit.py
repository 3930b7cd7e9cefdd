"""The world of the attacker suite (``test_attacker.py``): two patients with rich
records on a real server, the tokens of the people involved, and the helpers that
collect every resource an answer reveals.

The victim's records carry two markers that no other record carries: the identifier
value ``victim-secret`` and the family name ``Victimova``. A few records belong to the
attacker but name the victim (an Observation performed by the victim, one whose focus
is the victim): the attacker may see those, never what they point to.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from conftest import ServerProcess, bearer, mint_token
from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.tokens import Grant, Tokens

VICTIM, ATTACKER = "victim", "attacker"
MARKERS = ("victim-secret", "Victimova")
FHIR_JSON = {"content-type": "application/fhir+json"}
VIP = [
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "CELEB"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "V"},
]
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SNOMED = "http://snomed.info/sct"
SECRET_CODE = "urn:test:codes|victim-secret-code"
HIV, HYPERTENSION = "86406008", "38341003"


def ref(key: str) -> dict[str, str]:
    return {"reference": key}


def concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def observation(
    id_: str, patient: str, category: str, status: str = "final", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": status,
        "category": [concept(CATEGORY, category)],
        "code": concept("http://loinc.org", "8867-4" if category == "vital-signs" else "2345-7"),
        "subject": ref(f"Patient/{patient}"),
        "valueQuantity": {"value": 72 if patient == VICTIM else 64, "unit": "/min"},
        **extra,
    }


def patient_record(p: str) -> list[dict[str, Any]]:
    """The records of patient ``p``: ids start with ``p``."""
    subject = ref(f"Patient/{p}")
    doctor = ref("Practitioner/doc")
    return [
        observation(f"{p}-vital", p, "vital-signs"),
        observation(f"{p}-lab", p, "laboratory", "final" if p == VICTIM else "preliminary"),
        {"resourceType": "Condition", "id": f"{p}-cond", "subject": subject,
         "code": concept(SNOMED, HIV if p == VICTIM else HYPERTENSION)},
        {"resourceType": "Encounter", "id": f"{p}-enc", "status": "finished", "subject": subject,
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "participant": [{"individual": doctor}], "serviceProvider": ref("Organization/org")},
        {"resourceType": "MedicationRequest", "id": f"{p}-medreq", "status": "active",
         "intent": "order", "subject": subject, "requester": doctor,
         "medicationCodeableConcept": concept("http://www.nlm.nih.gov/research/umls/rxnorm",
                                              "1049502")},
        {"resourceType": "DiagnosticReport", "id": f"{p}-report", "status": "final",
         "subject": subject, "code": concept("http://loinc.org", "24323-8"),
         "performer": [doctor], "result": [ref(f"Observation/{p}-lab")]},
        {"resourceType": "AllergyIntolerance", "id": f"{p}-allergy", "patient": subject,
         "code": concept(SNOMED, "227493005")},
        {"resourceType": "FamilyMemberHistory", "id": f"{p}-fmh", "status": "completed",
         "patient": subject,
         "relationship": concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "FTH")},
    ]  # fmt: skip


def patient(p: str, family: str, birth: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": p, "name": [{"family": family}], "birthDate": birth,
            "generalPractitioner": [ref("Practitioner/doc")], **extra}  # fmt: skip


def marked(resource: dict[str, Any]) -> dict[str, Any]:
    """A victim record, with the identifier marker."""
    return {**resource, "identifier": [{"system": "urn:test:owner", "value": "victim-secret"}]}


def victim_records() -> list[dict[str, Any]]:
    extras: list[dict[str, Any]] = [
        patient(VICTIM, "Victimova", "1970-01-01", meta={"security": VIP}),
        observation("victim-focus", VICTIM, "survey", focus=[ref(f"Patient/{ATTACKER}")],
                    code=concept("urn:test:codes", "victim-secret-code")),
        {"resourceType": "Condition", "id": "victim-gone", "subject": ref(f"Patient/{VICTIM}"),
         "code": concept(SNOMED, "44054006")},
        {"resourceType": "Group", "id": "victim-group", "type": "person", "actual": True,
         "member": [{"entity": ref(f"Patient/{VICTIM}")}]},
    ]  # fmt: skip
    return [marked(r) for r in [*extras, *patient_record(VICTIM)]]


def attacker_records() -> list[dict[str, Any]]:
    return [
        patient(ATTACKER, "Attackson", "1990-05-05"),
        *patient_record(ATTACKER),
        # The attacker's own records that name the victim (both compartments for the
        # first, the attacker's only for the second: focus is no compartment link).
        observation(
            "shared-performer", ATTACKER, "vital-signs", performer=[ref(f"Patient/{VICTIM}")]
        ),
        observation("attacker-focus", ATTACKER, "survey", focus=[ref(f"Patient/{VICTIM}")]),
    ]


def others() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Organization", "id": "org", "name": "Clinique"},
        {"resourceType": "Practitioner", "id": "doc", "name": [{"family": "House"}]},
        # Not in any patient compartment (no subject): out of every patient's reach.
        marked({"resourceType": "List", "id": "victim-list", "status": "current",
                "mode": "working", "entry": [{"item": ref(f"Patient/{VICTIM}")},
                                             {"item": ref(f"Observation/{VICTIM}-vital")},
                                             {"item": ref(f"Observation/{ATTACKER}-vital")}]}),
    ]  # fmt: skip


def key_of(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


HIDDEN = frozenset(key_of(r) for r in [*victim_records(), *others()] if "identifier" in r)
"""Every record the attacker must never see: the victim's, and a List that names her.
(``Observation/moved``'s first version is the victim's too: its test is apart.)"""


@dataclass
class World:
    server: ServerProcess
    backend: str
    before: dict[str, Any] = field(default_factory=dict)
    """The hidden records as seeded (:meth:`snapshot`)."""

    @property
    def base(self) -> str:
        return self.server.base

    def system(self) -> httpx.Client:
        return self.client(mint_token(self.server.settings, self.base))

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base + "/", headers=bearer(token), timeout=20)

    def token(self, scopes: str, patient: str | None = None, fhir_user: str | None = None) -> str:
        """A user token as the authorization server issues it after login."""
        keys = SigningKeys(self.server.settings.storage.data_dir / "keys" / "signing-keys.json")
        grant = Grant("attack-app", "mallory", True, tuple(scopes.split()),
                      fhir_user=fhir_user, patient=patient)  # fmt: skip
        return Tokens(keys, None, 3600).issue(grant, self.base, self.base, None)  # type: ignore[arg-type]

    def attacker(self, scopes: str) -> httpx.Client:
        return self.client(self.token(scopes, ATTACKER, f"Patient/{ATTACKER}"))

    def seed(self) -> None:
        with self.system() as system:
            for resource in [*others(), *attacker_records(), *victim_records()]:
                put(system, resource)
            self._history(system)

    def _history(self, system: httpx.Client) -> None:
        """Versions and deletions: the victim's Patient and vital sign updated, an
        Observation moved from the victim to the attacker (its first version is the
        victim's), a Condition deleted."""
        victim = victim_records()
        put(system, {**victim[0], "birthDate": "1970-01-02"})
        vital = next(r for r in victim if r["id"] == "victim-vital")
        for value in (73, 74):
            put(system, {**vital, "valueQuantity": {"value": value, "unit": "/min"}})
        put(system, marked(observation("moved", VICTIM, "vital-signs")))
        put(system, observation("moved", ATTACKER, "vital-signs"))
        put(system, {**attacker_records()[1], "status": "amended"})
        assert system.delete("Condition/victim-gone").status_code == 204

    def snapshot(self) -> dict[str, Any]:
        """Every version of every hidden record, as the system sees it."""
        with self.system() as system:
            return {key: system.get(f"{key}/_history").json()["entry"] for key in sorted(HIDDEN)}

    def unknown(self) -> str:
        return f"nobody-{secrets.token_hex(4)}"


def put(client: httpx.Client, resource: dict[str, Any]) -> httpx.Response:
    answer = client.put(key_of(resource), content=json.dumps(resource), headers=FHIR_JSON)
    assert answer.status_code in (200, 201), answer.text
    return answer


# Collecting what an answer reveals -------------------------------------------------


def resources_in(document: Any) -> Iterator[dict[str, Any]]:
    """Every resource in a JSON document: itself, Bundle entries, nested Bundles."""
    if isinstance(document, dict):
        if isinstance(document.get("resourceType"), str):
            yield document
        for name, value in document.items():
            if name != "link":
                yield from resources_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from resources_in(item)


def keys_in(answer: httpx.Response) -> set[str]:
    """``Type/id`` of every resource an answer holds or points to (fullUrl, Location,
    Content-Location)."""
    document = body_of(answer)
    keys = {key_of(r) for r in resources_in(document) if "id" in r}
    urls = [answer.headers.get("location"), answer.headers.get("content-location")]
    urls += [e.get("fullUrl") for e in _entries(document)]
    urls += [(e.get("response") or {}).get("location") for e in _entries(document)]
    return keys | {_key_of_url(url) for url in urls if url}


def _entries(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        return [e for e in document.get("entry", []) if isinstance(e, dict)]
    return []


def _key_of_url(url: str) -> str:
    parts = urlsplit(url).path.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:])


def body_of(answer: httpx.Response) -> Any:
    if not answer.content:
        return None
    return answer.json()


def revealed(answer: httpx.Response) -> set[str]:
    """Hidden records and markers found in an answer. Paging links are left out: they
    echo the caller's own query."""
    found = keys_in(answer) & HIDDEN
    text = json.dumps(_without_links(body_of(answer)))
    found |= {marker for marker in MARKERS if marker in text}
    hidden_ids = {key.split("/")[1] for key in HIDDEN}
    for outcome in resources_in(body_of(answer)):
        if outcome["resourceType"] == "OperationOutcome":
            texts = json.dumps(outcome)
            found |= {f"id {i} in an OperationOutcome" for i in hidden_ids if i in texts}
    return found


def _without_links(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _without_links(v) for k, v in document.items() if k != "link"}
    if isinstance(document, list):
        return [_without_links(item) for item in document]
    return document


def pages(client: httpx.Client, first: httpx.Response, limit: int = 50) -> Iterator[httpx.Response]:
    """An answer and every page after it, following ``next`` to the end."""
    answer: httpx.Response | None = first
    for _ in range(limit):
        assert answer is not None
        yield answer
        url = next_link(answer)
        if url is None:
            return
        answer = client.get(url)
    raise AssertionError("more pages than expected")


def next_link(answer: httpx.Response) -> str | None:
    document = body_of(answer)
    if not isinstance(document, dict):
        return None
    links = document.get("link", [])
    return next((link["url"] for link in links if link["relation"] == "next"), None)


VOLATILE_HEADERS = {"date", "x-request-id", "content-length", "server"}


def shape(answer: httpx.Response, *ids: str) -> tuple[int, Any, dict[str, str]]:
    """What an answer says, with ``ids`` (the victim's or an unknown one) blanked:
    status, body and headers but the volatile ones."""
    text = answer.text
    for id_ in ids:
        text = text.replace(id_, "<id>")
    headers = {k: v for k, v in answer.headers.items() if k not in VOLATILE_HEADERS}
    for name, value in headers.items():
        for id_ in ids:
            headers[name] = value = value.replace(id_, "<id>")
    return answer.status_code, json.loads(text) if text else None, headers
