"""What a token's scopes let it reach (security/policy.py) and an account's rights
(security/roles.py)."""

from __future__ import annotations

from rempart.fhir.search import query as q
from rempart.fhir.search.query import AllOf, AnyOf, InCompartment
from rempart.security.policy import reach_for
from rempart.security.principal import Principal
from rempart.security.roles import within_rights
from rempart.storage.auth_ports import UserRecord
from rempart.storage.ports import Reach

ME = InCompartment("Patient", "p1")


def token(*scopes: str, patient: str | None = "p1") -> Principal:
    return Principal("u", True, "app", scopes, "j", 0.0, patient=patient)


def test_system_wildcard_reaches_everything() -> None:
    assert reach_for(token("system/*.cruds"), "rs") is None
    assert reach_for(token("user/*.rs"), "rs") is None


def test_patient_wildcard_is_the_compartment_of_every_type() -> None:
    assert reach_for(token("patient/*.rs"), "rs") == Reach((), others=True, others_where=ME)


def test_no_patient_in_context_reaches_nothing() -> None:
    assert reach_for(token("patient/*.rs", patient=None), "rs") == Reach()


def test_types_not_named_are_out_of_reach() -> None:
    reach = reach_for(token("system/Patient.rs", "patient/Observation.rs"), "rs")
    assert reach == Reach((("Observation", ME), ("Patient", None)), others=False)


def test_permissions_select_the_scopes() -> None:
    caller = token("patient/Observation.rs", "system/Observation.c")
    assert reach_for(caller, "rs") == Reach((("Observation", ME),))
    assert reach_for(caller, "c") == Reach((("Observation", None),))
    assert reach_for(caller, "d") == Reach()


def test_query_restrictions_become_search_criteria() -> None:
    reach = reach_for(token("patient/Observation.rs?category=vital-signs"), "rs")
    assert reach is not None and len(reach.by_type) == 1
    type_, node = reach.by_type[0]
    assert type_ == "Observation" and isinstance(node, AllOf)
    assert node.nodes[0] == ME
    assert isinstance(node.nodes[1], q.Test) and node.nodes[1].param.code == "category"


def test_alternatives_are_or_ed_and_an_unrestricted_one_wins() -> None:
    two = reach_for(
        token("user/Observation.rs?category=laboratory", "user/Observation.rs?status=final"),
        "rs",
    )
    assert two is not None and isinstance(two.by_type[0][1], AnyOf)
    wins = reach_for(token("user/Observation.rs?status=final", "user/Observation.rs"), "rs")
    assert wins == Reach((("Observation", None),))


def test_malformed_or_wildcard_restrictions_open_nothing() -> None:
    assert reach_for(token("user/Observation.rs?nonsense=1"), "rs") == Reach()
    assert reach_for(token("user/*.rs?status=final"), "rs") == Reach()


def test_roles_bound_what_a_user_gets() -> None:
    nurse = UserRecord("n", "h", "s", "Practitioner/n1", "nurse")
    asked = ["openid", "fhirUser", "user/*.cruds", "user/Observation.c", "user/Patient.rs"]
    assert within_rights(asked, nurse) == [
        "openid",
        "fhirUser",
        "user/Observation.c",
        "user/Patient.rs",
    ]
    nobody = UserRecord("x", "h", "s", "Practitioner/x")
    assert within_rights(asked, nobody) == ["openid", "fhirUser"]
    patient = UserRecord("p", "h", "s", "Patient/p1")
    assert within_rights(["patient/*.rs", "patient/*.cruds"], patient) == ["patient/*.rs"]
