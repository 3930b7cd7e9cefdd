"""SMART scopes, v1 and v2 syntax (SMART App Launch 2.2, §Scopes and Launch Context).

A resource scope is ``context/Type.permissions[?query]``: context ``patient``, ``user``
or ``system``; type a FHIR resource type or ``*``; permissions v2 letters ``cruds`` (in
that order) or v1 ``read``/``write``/``*``. Other scopes (``openid``, ``fhirUser``,
``launch/patient``, ``offline_access``…) are plain names.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

CONTEXTS = ("patient", "user", "system")
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
RESOURCE_SCOPE = re.compile(
    r"(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\."
    r"(read|write|\*|c?r?u?d?s?)(\?[A-Za-z0-9_\-.:|,=&%/]{1,256})?"
)
NAMED_SCOPE = re.compile(r"[A-Za-z][A-Za-z0-9_\-./:]{0,63}")
ADMIN_SCOPE = "system/rempart.admin"
"""Manages clients and users through the admin API (not a FHIR resource scope)."""
INTROSPECT_SCOPE = "system/rempart.introspect"
"""May introspect tokens of other clients (RFC 7662)."""
AUDIT_SCOPE = "system/rempart.audit"
"""May search and read the audit trail (``GET /fhir/AuditEvent``), and nothing else: no
resource scope reaches AuditEvent."""
USER_AUDIT_SCOPE = "user/rempart.audit"
"""The same, for a user whose role allows it (``security``, the security officer)."""
AUDIT_SCOPES = frozenset({AUDIT_SCOPE, USER_AUDIT_SCOPE})
MAX_SCOPES = 64


@dataclass(frozen=True)
class ResourceScope:
    context: str
    type: str
    permissions: frozenset[str]
    query: str | None = None

    def covers(self, other: ResourceScope) -> bool:
        """Whether holding ``self`` is enough to be granted ``other``."""
        return (
            self.context == other.context
            and self.type in ("*", other.type)
            and other.permissions <= self.permissions
            and self.query in (None, other.query)
        )


@functools.lru_cache(maxsize=4096)
def resource_scope(text: str) -> ResourceScope | None:
    """The resource scope ``text`` names, or None if it is not one (or malformed)."""
    match = RESOURCE_SCOPE.fullmatch(text)
    if match is None or not match.group(3):
        return None
    context, type_, perms, query = match.groups()
    letters = V1_PERMISSIONS.get(perms, perms)
    return ResourceScope(context, type_, frozenset(letters), query[1:] if query else None)


def split_scopes(text: str | None) -> list[str]:
    """The scope parameter as a list (space separated, duplicates dropped, order kept)."""
    seen: dict[str, None] = {}
    for item in (text or "").split(" "):
        if item:
            seen[item] = None
    return list(seen)


def well_formed(scope: str) -> bool:
    return resource_scope(scope) is not None or NAMED_SCOPE.fullmatch(scope) is not None


def grant(requested: list[str], allowed: tuple[str, ...]) -> list[str]:
    """The requested scopes that the allowed ones cover; the others are dropped
    (RFC 6749 §3.3: the server may grant less than asked, and says so)."""
    allowed_resources = [s for s in map(resource_scope, allowed) if s is not None]
    granted = []
    for scope in requested[:MAX_SCOPES]:
        wanted = resource_scope(scope)
        if wanted is None:
            if scope in allowed:
                granted.append(scope)
        elif any(have.covers(wanted) for have in allowed_resources):
            granted.append(scope)
    return granted
