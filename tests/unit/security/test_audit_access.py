"""Who may read the audit trail through the FHIR API, and that nobody may write it
(security/access.py ``check_audit``, security/roles.py)."""

from __future__ import annotations

import pytest

from rempart.errors import Category, RempartError
from rempart.security import access
from rempart.security.principal import Principal
from rempart.security.roles import within_rights
from rempart.storage.auth_ports import UserRecord

AUDIT = {"type": "AuditEvent"}


def system(*scopes: str) -> Principal:
    return Principal("siem", False, "siem", scopes, "j", 0.0)


def user(*scopes: str) -> Principal:
    return Principal("rssi", True, "console", scopes, "j", 0.0, "Practitioner/1")


def refusal(principal: Principal, method: str, shape: str) -> int | None:
    try:
        access.check(principal, method, shape, AUDIT)
    except RempartError as error:
        return error.category.value
    return None


@pytest.mark.parametrize("shape", ["T", "T/I"])
def test_only_the_audit_scope_reads_the_audit(shape: str) -> None:
    assert refusal(system("system/rempart.audit"), "GET", shape) is None
    assert refusal(user("user/rempart.audit"), "GET", shape) is None
    for wide in ("system/*.cruds", "system/AuditEvent.rs", "system/*.*", "user/rempart.audit"):
        assert refusal(system(wide), "GET", shape) == Category.FORBIDDEN.value
    assert refusal(user("user/*.cruds", "system/rempart.audit"), "GET", shape) == 403


@pytest.mark.parametrize(
    ("method", "shape"),
    [("POST", "T"), ("PUT", "T/I"), ("PATCH", "T/I"), ("DELETE", "T/I"), ("DELETE", "T")],
)
def test_nobody_writes_the_audit(method: str, shape: str) -> None:
    for principal in (system("system/rempart.audit", "system/*.cruds"), user("user/*.cruds")):
        assert refusal(principal, method, shape) == Category.NOT_ALLOWED.value


def test_other_types_are_checked_as_before() -> None:
    access.check(system("system/*.cruds"), "POST", "T", {"type": "Observation"})
    with pytest.raises(RempartError):
        access.check(system("system/rempart.audit"), "GET", "T", {"type": "Observation"})


def test_only_the_security_role_keeps_the_audit_scope() -> None:
    asked = ["openid", "user/rempart.audit", "system/rempart.audit", "user/*.rs"]
    officer = UserRecord("rssi", "h", "s", role="security")
    physician = UserRecord("doc", "h", "s", role="physician")
    assert within_rights(asked, officer) == ["openid", "user/rempart.audit"]
    assert within_rights(asked, physician) == ["openid", "user/*.rs"]
    assert within_rights(asked, UserRecord("anon", "h", "s")) == ["openid"]
