"""The versioning rules shared by every adapter (FHIR R4 §3.1.0.4 update, §3.1.0.7 delete).

Adapters read the latest row inside their write transaction and ask
:func:`plan_write` what to do; the rules live here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rempart.errors import Category, RempartError
from rempart.storage.crypto import KeyRing, Sealed, aad
from rempart.storage.ports import (
    HistoryQuery,
    StoredVersion,
    WriteRequest,
    from_micros,
    now_micros,
    to_micros,
)

COLUMNS = "seq, type, id, version, last_updated, key_id, body, method"
"""The columns every adapter selects for :func:`open_row`, in this order."""


@dataclass(frozen=True)
class Latest:
    version: int
    last_updated: int
    deleted: bool


@dataclass(frozen=True)
class Plan:
    """A new version to insert: its number, its time (µs) and its plaintext body."""

    version: int
    last_updated: int
    body: bytes | None
    method: str


def plan_write(latest: Latest | None, request: WriteRequest) -> Plan | None:
    """The version to write, or None when a delete has nothing to delete."""
    if request.create_only and latest is not None:
        raise RempartError(Category.CONFLICT, "A resource with this id already exists")
    if request.expected_version is not None and (
        latest is None or latest.deleted or latest.version != request.expected_version
    ):
        raise RempartError(Category.PRECONDITION_FAILED, "The resource version does not match")
    if request.render is None and (latest is None or latest.deleted):
        return None
    version = latest.version + 1 if latest else 1
    moment = now_micros(latest.last_updated if latest else 0)
    body = request.render(version, from_micros(moment)) if request.render else None
    return Plan(version, moment, body, "DELETE" if request.render is None else request.method)


def history_sql(
    query: HistoryQuery, within: tuple[str, list[Any]] | None = None
) -> tuple[str, list[object]]:
    """SELECT of the version rows of a history query, with ``?`` placeholders;
    ``within``: the caller's reach as SQL on alias ``rv``, checked on every version."""
    where: list[str] = []
    params: list[object] = []
    if within is not None:
        where.append(within[0])
        params += within[1]
    for column, value in (("type", query.type), ("id", query.id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        where.append("last_updated >= ?")
        params.append(to_micros(query.since))
    if query.at is not None:
        where.append("last_updated < ? AND (superseded IS NULL OR superseded > ?)")
        params += [to_micros(query.at[1]), to_micros(query.at[0])]
    if query.before_seq is not None:
        where.append("seq < ?")
        params.append(query.before_seq)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT {COLUMNS} FROM resource_version rv "  # noqa: S608 - fixed columns, values bound
        f"{clause} ORDER BY seq DESC LIMIT ?"
    )
    return sql, [*params, query.count]


def seal_body(
    keys: KeyRing, type_: str, id_: str, version: int, body: bytes | None
) -> tuple[str | None, bytes | None]:
    """``(key_id, blob)`` to store for a body; a deletion stores neither."""
    if body is None:
        return None, None
    sealed = keys.seal(body, aad(type_, id_, version))
    return sealed.key_id, sealed.blob


def reseal(keys: KeyRing, version: StoredVersion) -> tuple[str | None, bytes | None]:
    """Seal a stored version again under the active key (key rotation)."""
    return seal_body(keys, version.type, version.id, version.version, version.body)


def open_row(keys: KeyRing, row: tuple[Any, ...]) -> StoredVersion:
    """A row of :data:`COLUMNS` as a version, its body decrypted and checked."""
    seq, type_, id_, version, last_updated, key_id, blob, method = row
    body = None
    if blob is not None:
        body = keys.open_sealed(Sealed(key_id, bytes(blob)), aad(type_, id_, version))
    return StoredVersion(type_, id_, version, from_micros(last_updated), body, seq, method)
