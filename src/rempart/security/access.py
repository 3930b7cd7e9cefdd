"""Step 5 of the request path, first part: may this token attempt this interaction at
all? (SMART App Launch 2.2 §Scopes: ``c r u d s`` per resource type.)

This is the type-level check, done before the interaction runs. Narrowing to the
records the token may see (a patient's compartment, ``?param=value`` restrictions)
happens inside the store's queries (``security/policy.py``, ``reached_store.py``).
"""

from __future__ import annotations

import functools

from rempart.errors import Category, RempartError
from rempart.security.authentication import insufficient_scope
from rempart.security.principal import Principal
from rempart.security.scopes import AUDIT_SCOPE, USER_AUDIT_SCOPE, ResourceScope, resource_scope

# (method, path shape) → the permission letter the interaction needs.
PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", ""): "s",
    ("POST", "_search"): "s",
    ("GET", "T"): "s",
    ("POST", "T/_search"): "s",
    ("GET", "T/I/C"): "s",
    ("GET", "_history"): "r",
    ("GET", "T/_history"): "r",
    ("GET", "T/I"): "r",
    ("GET", "T/I/_history"): "r",
    ("GET", "T/I/_history/V"): "r",
    ("GET", "T/I/$"): "r",
    ("POST", "T"): "c",
    ("PUT", "T"): "u",
    ("PUT", "T/I"): "u",
    ("PATCH", "T"): "u",
    ("PATCH", "T/I"): "u",
    ("DELETE", "T"): "d",
    ("DELETE", "T/I"): "d",
}
WHOLE_SERVER = ("", "_search", "_history", "T/I/$")
"""Shapes that may reach every type: they need a ``*`` scope."""
BUNDLE = ("POST", "")
"""Batch and transaction: each entry is checked on its own (``Context.check``)."""
AUDIT_TYPE = "AuditEvent"
"""The audit trail: read with the audit scope only, written by the server only."""


def check(principal: Principal, method: str, shape: str, names: dict[str, str]) -> None:
    """Raises 403 ``insufficient_scope`` unless a scope of the token allows this kind
    of interaction on this type. Which records it reaches is the store's business
    (``security/policy.py``). AuditEvent has rules of its own (:func:`check_audit`)."""
    if names.get("type") == AUDIT_TYPE:
        check_audit(principal, method, shape)
        return
    wanted = "*" if shape in WHOLE_SERVER else (names.get("type") or "*")
    if shape == "T/I/C":
        wanted = names.get("target", "*")
    missing = _missing(principal.scopes, principal.patient is not None, method, shape, wanted)
    if missing is not None:
        raise insufficient_scope(missing)


@functools.lru_cache(maxsize=8192)
def _missing(
    scopes: tuple[str, ...], has_patient: bool, method: str, shape: str, wanted: str
) -> str | None:
    """None if the scopes allow it, else the scope that would (for the challenge).
    Pure and cached: a token asks the same questions again and again."""
    parsed = [s for s in map(resource_scope, scopes) if s is not None]
    if (method, shape) == BUNDLE:
        return None if parsed else "*.cruds"
    needed = frozenset(PERMISSIONS.get((method, shape), "cruds"))
    if any(_allows(has_patient, s, wanted, needed) for s in parsed):
        return None
    return f"{wanted}.{''.join(sorted(needed))}"


def _allows(has_patient: bool, scope: ResourceScope, type_: str, needed: frozenset[str]) -> bool:
    if scope.context == "patient" and not has_patient:
        return False  # a patient scope without a patient in context reaches nothing
    return scope.type in ("*", type_) and needed <= scope.permissions


def check_audit(principal: Principal, method: str, shape: str) -> None:
    """AuditEvent through the FHIR API: never written (405, whatever the scopes), read
    only with the audit scope (``system/rempart.audit``, or ``user/rempart.audit`` for a
    user): no resource scope, not even ``*.cruds``, reaches the audit trail."""
    if PERMISSIONS.get((method, shape), "c") not in ("r", "s"):
        raise RempartError(Category.NOT_ALLOWED, "AuditEvent is written by the server only")
    wanted = USER_AUDIT_SCOPE if principal.is_user else AUDIT_SCOPE
    if wanted not in principal.scopes:
        raise insufficient_scope(wanted)
