"""The synthetic hospital: reproducible, valid FHIR R4, INS only where qualified, and a
roster that tells the truth about the records."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from rempart.errors import RempartError
from rempart.fhir.validation import FhirkitValidator
from rempart.synth.generator import Generator, PatientRecord
from rempart.synth.identifiers import INS_SYSTEM, nir_key
from rempart.synth.output import write_bundles, write_ndjson

REFERENCE = date(2026, 1, 15)
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


@pytest.fixture(scope="module")
def clinic() -> tuple[Generator, list[dict[str, Any]], list[PatientRecord]]:
    generator = Generator(100, seed=7, reference=REFERENCE)
    establishment = list(generator.establishment())
    return generator, establishment, list(generator.records())


def _all(clinic: Any) -> list[dict[str, Any]]:
    _, establishment, records = clinic
    return establishment + [r for record in records for r in record.resources]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("writer", [write_ndjson, write_bundles])
def test_the_same_seed_gives_the_same_bytes(writer: Any, tmp_path: Path) -> None:
    for run in ("a", "b", "other"):
        writer(Generator(30, seed=3 if run != "other" else 4), tmp_path / run, lambda n: None)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second and len(first) > 2
    assert _files(tmp_path / "other") != first


def test_every_resource_of_a_clinic_is_valid_r4(clinic: Any) -> None:
    validator, invalid = FhirkitValidator(), []
    resources = _all(clinic)
    for resource in resources:
        try:
            validator.load(resource)
        except RempartError as error:
            invalid.append(
                (resource["resourceType"], resource["id"], error.message, error.issues[:2])
            )
    assert invalid == []
    kinds = Counter(r["resourceType"] for r in resources)
    expected = {
        "Organization", "Location", "Practitioner", "PractitionerRole", "Patient", "Encounter",
        "Condition", "Observation", "DiagnosticReport", "MedicationRequest", "Procedure",
        "AllergyIntolerance", "DocumentReference",
    }  # fmt: skip
    assert set(kinds) == expected and kinds["Patient"] == 100
    assert len({(r["resourceType"], r["id"]) for r in resources}) == len(resources)


def test_ins_is_present_only_on_qualified_identities_with_a_correct_key(clinic: Any) -> None:
    _, _, records = clinic
    qualified = 0
    for record in records:
        patient = record.resources[0]
        ins = [i["value"] for i in patient["identifier"] if i["system"] == INS_SYSTEM]
        status = patient["extension"][0]["extension"][0]["valueCoding"]["code"]
        assert (status == "VALI") == record.care.qualified == bool(ins)
        for value in ins:
            assert len(value) == 15 and value.isdigit()
            assert int(value[13:]) == 97 - int(value[:13]) % 97 == int(nir_key(value[:13]))
            assert value[0] == ("2" if patient["gender"] == "female" else "1")
        qualified += bool(ins)
    assert 40 < qualified < 95


def test_vips_carry_the_very_restricted_label_and_only_they_do(clinic: Any) -> None:
    generator, _, records = clinic
    labelled = {r.resources[0]["id"] for r in records if _very_restricted(r.resources[0])}
    assert labelled == set(generator.roster.vip) and labelled


def _very_restricted(patient: dict[str, Any]) -> bool:
    labels = patient.get("meta", {}).get("security", [])
    return {"system": CONFIDENTIALITY, "code": "V"} in [
        {"system": label["system"], "code": label["code"]} for label in labels
    ]


def test_roster_care_teams_are_staff_and_interns_work_within_their_contract(clinic: Any) -> None:
    generator, _, records = clinic
    staff = {s.practitioner: s for s in generator.roster.staff}
    reference = REFERENCE.isoformat()
    departed = [s for s in staff.values() if s.kind == "intern" and s.end and s.end < reference]
    assert departed and all(s.start < s.end for s in departed if s.end)
    for record in records:
        for encounter in record.care.encounters:
            assert encounter.participants and encounter.service in {
                s.organization for s in generator.roster.services
            }
            for practitioner in encounter.participants:
                member = staff[practitioner]
                assert member.service == encounter.service
                if member.kind == "intern":
                    assert member.start <= encounter.start[:10] <= (member.end or "9999")


def test_encounter_resources_match_the_roster(clinic: Any) -> None:
    _, _, records = clinic
    for record in records:
        encounters = {r["id"]: r for r in record.resources if r["resourceType"] == "Encounter"}
        for care in record.care.encounters:
            resource = encounters[care.encounter]
            people = [p["individual"]["reference"] for p in resource["participant"]]
            assert people == [f"Practitioner/{p}" for p in care.participants]
            assert resource["serviceProvider"]["reference"] == f"Organization/{care.service}"
            assert (resource["status"] == "in-progress") == (care.end is None)


def test_employees_and_relatives_share_identity_or_family_and_home(clinic: Any) -> None:
    generator, establishment, records = clinic
    patients = {r.resources[0]["id"]: r.resources[0] for r in records}
    practitioners = {r["id"]: r for r in establishment if r["resourceType"] == "Practitioner"}
    assert generator.roster.employees and generator.roster.relatives
    for link in generator.roster.employees:
        patient, practitioner = patients[link.patient], practitioners[link.practitioner]
        for element in ("name", "birthDate", "address", "gender"):
            assert patient[element] == practitioner[element]
        assert patient["meta"]["tag"][0]["code"] == "employee"
    for link in generator.roster.relatives:
        patient, practitioner = patients[link.patient], practitioners[link.practitioner]
        assert patient["name"][0]["family"] == practitioner["name"][0]["family"]
        assert patient["address"] == practitioner["address"]
        assert "meta" not in patient or "tag" not in patient["meta"]


def test_diagnostic_reports_reference_lab_observations_of_the_same_encounter(clinic: Any) -> None:
    _, _, records = clinic
    for record in records:
        by_id = {r["id"]: r for r in record.resources}
        for report in (r for r in record.resources if r["resourceType"] == "DiagnosticReport"):
            for result in report["result"]:
                observation = by_id[result["reference"].removeprefix("Observation/")]
                assert observation["category"][0]["coding"][0]["code"] == "laboratory"
                assert observation["encounter"] == report["encounter"]
                assert observation["valueQuantity"]["system"] == "http://unitsofmeasure.org"
