"""Step 5 of the request path, second part: what records a token may reach, as a
:class:`~rempart.storage.ports.Reach` the store pushes into every query (SMART App
Launch 2.2 §Scopes: context ``patient`` = one patient's compartment; v2 ``?param=value``
restrictions = search criteria).

For each resource type, the scopes granting the permission give alternatives:

* a ``user/`` or ``system/`` scope without restriction: every record of the type;
* a ``patient/`` scope: records in the compartment of the token's patient
  (``Patient/<id>`` itself included), and nothing if the token has no patient;
* a ``?param=value`` restriction: records matching that search, and'ed with the rest.

A type no scope names is out of reach. A record out of reach is not "forbidden": the
store never returns it, so it answers exactly like one that does not exist.
"""

from __future__ import annotations

import functools
from typing import Literal
from urllib.parse import parse_qsl

from rempart.errors import RempartError
from rempart.fhir.search.parse import parse_search
from rempart.fhir.search.query import AllOf, AnyOf, InCompartment, Node
from rempart.security.principal import Principal
from rempart.security.scopes import ResourceScope, resource_scope
from rempart.storage.ports import Reach

NOWHERE = Reach()
Alternatives = list[Node | None]


def reach_for(principal: Principal, letters: str) -> Reach | None:
    """The reach of ``principal`` for permissions ``letters`` (any of them suffices:
    ``"rs"`` for reading, ``"c"``, ``"u"``, ``"d"`` for writes); None when unrestricted."""
    return _reach_of(principal.scopes, principal.patient, letters)


@functools.lru_cache(maxsize=4096)
def _reach_of(scopes: tuple[str, ...], patient: str | None, letters: str) -> Reach | None:
    """Computed once per distinct (scopes, patient, letters): every request of a token
    asks for the same reach."""
    by_type: dict[str, Alternatives] = {}
    wildcard: Alternatives = []
    for scope in (s for s in map(resource_scope, scopes) if s is not None):
        if not set(letters) & scope.permissions:
            continue
        alternative = _alternative(patient, scope)
        if alternative is False:
            continue
        (wildcard if scope.type == "*" else by_type.setdefault(scope.type, [])).append(alternative)
    return _reach(by_type, wildcard)


def _alternative(patient: str | None, scope: ResourceScope) -> Node | Literal[False] | None:
    """The records one scope opens: None for all of its type, False for none."""
    nodes: list[Node] = []
    if scope.context == "patient":
        if patient is None:
            return False
        nodes.append(InCompartment("Patient", patient))
    if scope.query is not None:
        restriction = _restriction(scope)
        if restriction is None:
            return False
        nodes += restriction
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else AllOf(tuple(nodes))


def _restriction(scope: ResourceScope) -> list[Node] | None:
    """A scope's ``?param=value`` as search criteria; None if it cannot be (a wildcard
    type, or a parameter the type does not have): such a scope opens nothing."""
    if scope.type == "*" or scope.query is None:
        return None
    try:
        params = parse_qsl(scope.query, keep_blank_values=False, strict_parsing=True)
        query = parse_search((scope.type,), params, strict=True)
    except (RempartError, ValueError):
        return None
    if query.includes or query.sort or not query.where:
        return None
    return list(query.where)


def _reach(by_type: dict[str, Alternatives], wildcard: Alternatives) -> Reach | None:
    others = _combine(wildcard) if wildcard else None
    if not by_type and wildcard and others is None:
        return None  # every record of every type
    typed = tuple(
        (type_, _combine(alternatives + wildcard))
        for type_, alternatives in sorted(by_type.items())
    )
    return Reach(typed, others=bool(wildcard), others_where=others)


def _combine(alternatives: Alternatives) -> Node | None:
    if any(a is None for a in alternatives):
        return None
    nodes = tuple(a for a in alternatives if a is not None)
    return nodes[0] if len(nodes) == 1 else AnyOf(nodes)
