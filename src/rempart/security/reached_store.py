"""The store as one caller may use it: every read, history, search, include and
conditional match carries the caller's reach into the store's own queries, and every
write is checked against it before it happens (design.md: authorization is never a
post-filter).

Writes on behalf of a restricted caller (a ``patient/`` token, a ``?param=value``
scope) obey three rules: the current version must be within reach (otherwise the
answer is the one for a resource that does not exist), the new version must stay
within reach (a patient cannot move a record out of their compartment or link it to
another patient), and no resource is created by update (``PUT`` to an unknown id).
Security labels (``meta.security``) are set by system clients only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from rempart.errors import Category, RempartError
from rempart.fhir.search.query import AllOf, AnyOf, IdIn, InCompartment, Node, SearchQuery
from rempart.security.policy import reach_for
from rempart.security.principal import Principal
from rempart.storage.index import compartments_of
from rempart.storage.ports import (
    HistoryQuery,
    Reach,
    ResourceStore,
    SearchRequest,
    SearchResult,
    StoredVersion,
    WriteRequest,
    WriteResult,
)

UNKNOWN = object()


def _not_found() -> RempartError:
    return RempartError(Category.NOT_FOUND, "Resource not found")


class ReachedStore:
    def __init__(self, inner: ResourceStore, principal: Principal) -> None:
        self._inner = inner
        self._principal = principal
        self._read = reach_for(principal, "rs")

    async def read(self, type_: str, id_: str, reach: Reach | None = None) -> StoredVersion | None:
        return await self._inner.read(type_, id_, self._read)

    async def vread(
        self, type_: str, id_: str, version: int, reach: Reach | None = None
    ) -> StoredVersion | None:
        return await self._inner.vread(type_, id_, version, self._read)

    async def history(self, query: HistoryQuery) -> list[StoredVersion]:
        return await self._inner.history(replace(query, reach=self._read))

    async def search(self, request: SearchRequest) -> SearchResult:
        return await self._inner.search(replace(request, reach=self._read))

    async def matching(
        self, query: SearchQuery, limit: int, reach: Reach | None = None
    ) -> list[tuple[str, str]]:
        return await self._inner.matching(query, limit, self._read)

    async def write(self, request: WriteRequest) -> WriteResult:
        return await self._inner.write(await self._checked(request))

    async def write_all(self, requests: list[WriteRequest]) -> list[WriteResult]:
        return await self._inner.write_all([await self._checked(r) for r in requests])

    async def rewrap(self, batch: int = 500) -> int:
        raise RempartError(Category.FORBIDDEN, "Not available to API callers")

    async def close(self) -> None:
        """The shared store is closed by its owner, not by one caller's view."""

    async def _checked(self, request: WriteRequest) -> WriteRequest:
        if request.type == "AuditEvent":  # the audit trail is its own store (access.py)
            raise RempartError(Category.NOT_ALLOWED, "AuditEvent is written by the server only")
        current = await self._inner.read(request.type, request.id)
        exists = current is not None and not current.deleted
        letter = "d" if request.render is None else ("u" if exists else "c")
        reach = reach_for(self._principal, letter)
        body = None if request.render is None else request.render(1, datetime.now(UTC))
        if reach is not None:
            # First whether the caller sees the record at all: nothing below may
            # answer differently for a record out of reach and one that does not exist.
            if exists:
                if await self._inner.read(request.type, request.id, reach) is None:
                    raise _not_found()
            elif not request.create_only:
                raise _not_found()  # no create-on-update, no delete of the unknown
        self._check_labels(current if exists else None, body)
        if reach is None:
            return request
        if body is not None:
            self._check_new(reach, request.type, request.id, body)
        elif exists and current is not None and current.body is not None:
            self._check_unshared(request.type, request.id, current.body)
        expected = request.expected_version or (current.version if exists and current else None)
        return replace(request, expected_version=expected, guard=_guarded(request.guard, reach))

    def _check_new(self, reach: Reach, type_: str, id_: str, body: bytes) -> None:
        compartments = compartments_of(type_, id_, body)
        verdict = _within(_node_for(reach, type_), compartments)
        if verdict is not True:
            raise RempartError(Category.FORBIDDEN, "This write is beyond the token's reach")
        patient = self._principal.patient
        others = {c for c in compartments if c[0] == "Patient" and c[1] != patient}
        if patient is not None and others:
            raise RempartError(Category.FORBIDDEN, "A record may not link another patient")

    def _check_unshared(self, type_: str, id_: str, body: bytes) -> None:
        """A patient may not delete a record that is also another patient's (the
        same rule that keeps them from writing one)."""
        patient = self._principal.patient
        compartments = compartments_of(type_, id_, body)
        if patient is not None and any(c[0] == "Patient" and c[1] != patient for c in compartments):
            raise RempartError(Category.FORBIDDEN, "A record shared with another patient")

    def _check_labels(self, current: StoredVersion | None, body: bytes | None) -> None:
        """Only system clients set or change security labels."""
        if body is None or not (self._principal.is_user or self._principal.patient):
            return
        before = _labels(current.body) if current is not None and current.body else None
        if _labels(body) != before:
            raise RempartError(
                Category.FORBIDDEN, "Security labels (meta.security) are set by the system"
            )


def _labels(body: bytes) -> Any:
    resource = orjson.loads(body)
    return resource.get("meta", {}).get("security") or None


def _node_for(reach: Reach, type_: str) -> Node | object | None:
    for listed, node in reach.by_type:
        if listed == type_:
            return node
    return reach.others_where if reach.others else UNKNOWN


def _within(node: Node | object | None, compartments: set[tuple[str, str]]) -> bool | None:
    """Whether a record in ``compartments`` meets ``node``; None if that cannot be told
    without the database (search criteria): such writes are refused."""
    if node is None:
        return True
    if isinstance(node, InCompartment):
        return (node.type, node.id) in compartments
    if isinstance(node, AnyOf):
        verdicts = [_within(n, compartments) for n in node.nodes]
        return True if True in verdicts else (None if None in verdicts else False)
    if isinstance(node, AllOf):
        verdicts = [_within(n, compartments) for n in node.nodes]
        return False if False in verdicts else (None if None in verdicts else True)
    return None if node is not UNKNOWN else False


def _guarded(guard: SearchQuery | None, reach: Reach) -> SearchQuery | None:
    """A conditional create's guard sees only what the caller sees: a match out of
    reach must not turn into a conflict that reveals it."""
    if guard is None or len(guard.types) != 1:
        return guard
    node = _node_for(reach, guard.types[0])
    if node is None:
        return guard
    if node is UNKNOWN:
        return replace(guard, where=(*guard.where, IdIn(())))
    assert not isinstance(node, bool) and node is not UNKNOWN
    return replace(guard, where=(*guard.where, node))  # type: ignore[arg-type]
