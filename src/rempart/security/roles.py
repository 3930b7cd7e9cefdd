"""An account's own rights, by role: the scopes a user's token may hold whatever the
app asks for (SMART App Launch 2.2: granted scopes are the intersection of what the
app requested, what the client may have, and what the user may do).

Roles are the hospital's usual functions. An account without a role gets nothing
beyond its identity, unless it is a patient's own account (``fhirUser`` Patient/…),
which may read its own record.
"""

from __future__ import annotations

from rempart.security.scopes import AUDIT_SCOPES, USER_AUDIT_SCOPE, grant, resource_scope
from rempart.storage.auth_ports import UserRecord

ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "physician": ("user/*.cruds",),
    "nurse": ("user/*.rs", "user/Observation.cu", "user/MedicationAdministration.cu"),
    "intern": ("user/*.rs", "user/Observation.c", "user/Condition.c"),
    "admission": ("user/Patient.cruds", "user/Encounter.cruds", "user/Coverage.cruds"),
    "lab": (
        "user/Patient.rs",
        "user/Observation.cruds",
        "user/DiagnosticReport.cruds",
        "user/Specimen.cruds",
    ),
    "patient": ("patient/*.rs",),
    "security": (USER_AUDIT_SCOPE,),
}
PATIENT_OWN = ("patient/*.rs",)


def rights(user: UserRecord) -> tuple[str, ...]:
    if user.role is not None:
        return ROLE_SCOPES.get(user.role, ())
    if user.fhir_user and user.fhir_user.startswith("Patient/"):
        return PATIENT_OWN
    return ()


def within_rights(scopes: list[str], user: UserRecord) -> list[str]:
    """``scopes`` less the resource scopes the account's role does not cover, and less
    the audit scopes unless the role has them; identity and launch scopes (``openid``,
    ``fhirUser``, ``launch/patient``…) pass."""
    allowed = rights(user)
    covered = set(grant([s for s in scopes if resource_scope(s)], allowed))
    return [
        s
        for s in scopes
        if (resource_scope(s) is None and s not in AUDIT_SCOPES) or s in covered or s in allowed
    ]
