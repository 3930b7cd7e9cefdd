"""Export of the audit trail for a SIEM (docs/audit-export.md).

Records are streamed from the store in ``seq`` order, in batches, to a destination:
JSON lines (:class:`JsonLines`) or syslog (``security.audit.syslog``). Each line is the
event with its ``seq`` and ``hash`` (hex) added, keys sorted, so that a SIEM can check
continuity: ``hash = SHA-256(previous hash || the line without seq and hash)``.

With a destination name, the last ``seq`` delivered is remembered in the store
(``audit_export``) and the next export starts after it. A mark only ever covers batches
the destination acknowledged as written; when the destination fails mid-way, what was
acknowledged is marked and the failure is reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import orjson

from rempart.errors import Category, RempartError
from rempart.security.audit.ports import AuditStore
from rempart.security.audit.records import StoredRecord

BATCH = 500


class Destination(Protocol):
    def send(self, records: Sequence[StoredRecord]) -> None:
        """Write ``records``, returning once written and flushed; ``OSError`` if not."""
        ...

    def close(self) -> None: ...


def json_line(record: StoredRecord) -> bytes:
    event = orjson.loads(record.body)
    fields = {**event, "seq": record.seq, "hash": record.hash.hex()}
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


class JsonLines:
    """One JSON object per line to a binary stream; ``sync`` also fsyncs each batch
    (for a file; not for a pipe)."""

    def __init__(self, stream: BinaryIO, sync: bool) -> None:
        self._stream, self._sync = stream, sync

    def send(self, records: Sequence[StoredRecord]) -> None:
        self._stream.write(b"".join(json_line(record) for record in records))
        self._stream.flush()
        if self._sync:
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        self._stream.flush()


@dataclass
class Exported:
    count: int = 0
    first: int | None = None
    last: int | None = None
    """The last ``seq`` the destination acknowledged."""


async def export_records(
    store: AuditStore, destination: Destination, after: int | None, mark: str | None
) -> Exported:
    """Send the records after ``after`` (or after the mark ``mark``, when named) and
    advance the mark to what was acknowledged, even when the destination fails."""
    if mark is not None:
        after = await store.export_mark(mark)
    done = Exported()
    try:
        await _stream(store, destination, after, done)
    finally:
        if mark is not None and done.last is not None:
            await store.mark_exported(mark, done.last)
    return done


async def _stream(
    store: AuditStore, destination: Destination, after: int | None, done: Exported
) -> None:
    batch: list[StoredRecord] = []
    async for record in store.records(after):
        batch.append(record)
        if len(batch) == BATCH:
            _send(destination, batch, done)
            batch = []
    if batch:
        _send(destination, batch, done)


def _send(destination: Destination, batch: list[StoredRecord], done: Exported) -> None:
    try:
        destination.send(batch)
    except OSError as exc:
        where = f"after record {done.last}" if done.last is not None else "before any record"
        raise RempartError(
            Category.UNAVAILABLE, f"The export failed {where} was written: {exc}"
        ) from exc
    done.count += len(batch)
    done.first = batch[0].seq if done.first is None else done.first
    done.last = batch[-1].seq
