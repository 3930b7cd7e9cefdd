"""SMART scopes v1/v2: parsing, coverage and granting; the type-level access check."""

from __future__ import annotations

import pytest

from rempart.errors import RempartError
from rempart.security import access
from rempart.security.oauth.pkce import s256, valid_challenge, verifier_matches
from rempart.security.principal import Principal
from rempart.security.scopes import grant, resource_scope, split_scopes, well_formed


@pytest.mark.parametrize(
    "text, context, type_, perms, query",
    [
        ("patient/Observation.rs", "patient", "Observation", "rs", None),
        ("user/*.cruds", "user", "*", "cruds", None),
        ("system/Patient.read", "system", "Patient", "rs", None),
        ("system/Patient.write", "system", "Patient", "cud", None),
        ("system/*.*", "system", "*", "cruds", None),
        ("patient/Observation.rs?category=laboratory", "patient", "Observation", "rs",
         "category=laboratory"),
    ],
)  # fmt: skip
def test_resource_scopes_parse(
    text: str, context: str, type_: str, perms: str, query: str | None
) -> None:
    scope = resource_scope(text)
    assert scope is not None
    assert (scope.context, scope.type, scope.permissions, scope.query) == (
        context, type_, frozenset(perms), query,
    )  # fmt: skip


@pytest.mark.parametrize(
    "text", ["patient/Observation.", "admin/Patient.rs", "system/Patient.sr", "system/patient.rs",
             "system/Patient.rx", "openid", "launch/patient", "system/Patient.rs?a=<b>"],
)  # fmt: skip
def test_not_resource_scopes(text: str) -> None:
    assert resource_scope(text) is None


def test_well_formed_and_split() -> None:
    assert split_scopes("  openid  fhirUser openid ") == ["openid", "fhirUser"]
    assert well_formed("launch/patient") and well_formed("system/*.rs")
    assert not well_formed("<script>") and not well_formed("a b")


def test_grant_keeps_only_covered_scopes() -> None:
    allowed = ("system/Patient.rs", "system/Observation.cruds", "openid")
    requested = [
        "system/Patient.r",
        "system/Patient.rs",
        "system/Patient.c",
        "system/Observation.read",
        "system/*.rs",
        "user/Patient.rs",
        "openid",
        "fhirUser",
    ]
    assert grant(requested, allowed) == [
        "system/Patient.r",
        "system/Patient.rs",
        "system/Observation.read",
        "openid",
    ]
    assert grant(["system/Encounter.rs"], ("system/*.rs",)) == ["system/Encounter.rs"]
    assert grant(["system/Encounter.rs?status=x"], ("system/*.rs",)) == [
        "system/Encounter.rs?status=x"
    ]
    assert grant(["system/Encounter.rs"], ("system/*.rs?status=x",)) == []


def principal(*scopes: str, patient: str | None = None) -> Principal:
    return Principal("s", False, "c", scopes, "j", 0.0, patient=patient)


@pytest.mark.parametrize(
    "scopes, method, shape, type_, ok",
    [
        (("system/Patient.rs",), "GET", "T/I", "Patient", True),
        (("system/Patient.rs",), "GET", "T", "Patient", True),
        (("system/Patient.r",), "GET", "T", "Patient", False),
        (("system/Patient.rs",), "PUT", "T/I", "Patient", False),
        (("system/Patient.rs",), "GET", "T/I", "Observation", False),
        (("system/Patient.rs",), "GET", "", None, False),
        (("system/*.rs",), "GET", "", None, True),
        (("system/*.rs",), "GET", "T/I/$", "Patient", True),
        (("system/Patient.rs",), "GET", "T/I/$", "Patient", False),
        (("system/Patient.rs",), "POST", "", None, True),  # entries checked one by one
        (("openid", "fhirUser"), "POST", "", None, False),
        (("user/Observation.c",), "POST", "T", "Observation", True),
        (("user/Observation.c",), "DELETE", "T/I", "Observation", False),
        (("patient/*.rs",), "GET", "T", "Observation", True),
        (("system/Observation.rs?category=vital-signs",), "GET", "T", "Observation", True),
    ],
)  # fmt: skip
def test_type_level_access(
    scopes: tuple[str, ...], method: str, shape: str, type_: str | None, ok: bool
) -> None:
    names = {"type": type_} if type_ else {}
    caller = principal(*scopes, patient="p1")
    if ok:
        access.check(caller, method, shape, names)
    else:
        with pytest.raises(RempartError) as refused:
            access.check(caller, method, shape, names)
        assert refused.value.category.status == 403
        assert 'error="insufficient_scope"' in refused.value.headers["www-authenticate"]


def test_patient_scopes_need_a_patient_in_context() -> None:
    with pytest.raises(RempartError):
        access.check(principal("patient/*.rs"), "GET", "T", {"type": "Observation"})
    access.check(principal("patient/*.rs", patient="p1"), "GET", "T", {"type": "Observation"})


def test_compartment_search_needs_the_target_type() -> None:
    names = {"type": "Patient", "id": "p1", "target": "Observation"}
    access.check(principal("system/Observation.s"), "GET", "T/I/C", names)
    with pytest.raises(RempartError):
        access.check(principal("system/Encounter.s"), "GET", "T/I/C", names)


def test_pkce_s256_only() -> None:
    # RFC 7636, Appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = s256(verifier)
    assert challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert valid_challenge(challenge, "S256")
    assert not valid_challenge(challenge, "plain") and not valid_challenge(None, "S256")
    assert not valid_challenge(verifier, None)
    assert verifier_matches(verifier, challenge)
    assert not verifier_matches("w" * 43, challenge)
    assert not verifier_matches("short", s256("short"))  # below 43 characters
    assert not verifier_matches(None, challenge)
