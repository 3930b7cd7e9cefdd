"""Step 5 of the request path, first part: may this token attempt this interaction at
all? (SMART App Launch 2.2 §Scopes: ``c r u d s`` per resource type.)

This is the type-level check. Narrowing to one patient's compartment inside the
queries is the job of the compartment filter; until it exists, a ``patient/`` token
may read its own Patient resource and nothing else, so no such token can see
another patient's record.
"""

from __future__ import annotations

from rempart.security.authentication import insufficient_scope
from rempart.security.principal import Principal
from rempart.security.scopes import ResourceScope, resource_scope

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
"""Batch and transaction: every kind of write on every type, until entries are checked
one by one."""


def check(principal: Principal, method: str, shape: str, type_: str | None) -> None:
    """Raises 403 ``insufficient_scope`` unless a scope of the token allows this."""
    scopes = [s for s in map(resource_scope, principal.scopes) if s is not None]
    if (method, shape) == BUNDLE:
        needed, wanted = frozenset("cruds"), "*"
    else:
        needed = frozenset(PERMISSIONS.get((method, shape), "cruds"))
        wanted = "*" if shape in WHOLE_SERVER else (type_ or "*")
    if shape == "T/I/C":
        wanted = "*"
    if not any(_allows(s, wanted, needed) for s in scopes):
        raise insufficient_scope(f"{wanted}.{''.join(sorted(needed))}")


def _allows(scope: ResourceScope, type_: str, needed: frozenset[str]) -> bool:
    if scope.context == "patient" or scope.query is not None:
        return False  # needs the compartment filter: see patient_self()
    return scope.type in ("*", type_) and needed <= scope.permissions


def patient_self(
    principal: Principal, method: str, shape: str, type_: str | None, id_: str | None
) -> bool:
    """A patient-context token reading its own Patient resource."""
    if principal.patient is None or (method, shape) != ("GET", "T/I"):
        return False
    if type_ != "Patient" or id_ != principal.patient:
        return False
    scopes = [s for s in map(resource_scope, principal.scopes) if s is not None]
    return any(
        s.context == "patient" and s.type in ("*", "Patient") and "r" in s.permissions
        for s in scopes
    )
