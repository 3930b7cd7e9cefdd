"""Retention: which records ``rempart audit purge`` removes, and the event that says so
(docs/audit-export.md).

Records are kept ``retention_days`` (``REMPART_AUDIT_RETENTION_DAYS``) and, unless the
operator says otherwise, until they were exported: a purge removes the longest run of
records, from the first one stored, that were all recorded before the cutoff and are
all at or below the export mark of the named destination. The store then removes them
under the chain lock, behind a signed checkpoint that anchors the rest, and chains an
``audit-purge`` event after the head (``AuditRetention.purge``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from rempart.errors import Category, RempartError
from rempart.security.audit.capture import SOURCE, SUBTYPES
from rempart.security.audit.ports import AuditStore, Purged, Removal


def cutoff(now: datetime, retention_days: int, before: date | None) -> datetime:
    """The instant before which records may go: ``now - retention_days``, or the start
    (UTC) of an earlier day ``before``. A later ``before`` would cut into the retention:
    refused, as is a negative retention."""
    if retention_days < 0:
        raise RempartError(Category.INCORRECT, "REMPART_AUDIT_RETENTION_DAYS cannot be negative")
    limit = now - timedelta(days=retention_days)
    if before is None:
        return limit
    chosen = datetime.combine(before, time.min, UTC)
    if chosen > limit:
        raise RempartError(
            Category.INCORRECT,
            f"--before {before} is later than the retention allows (records are kept"
            f" {retention_days} days, REMPART_AUDIT_RETENTION_DAYS: {limit:%Y-%m-%d %H:%M} UTC)",
        )
    return chosen


async def purge_expired(
    store: AuditStore, before: datetime, export_name: str | None
) -> Purged | None:
    """Purge what is older than ``before`` and exported to ``export_name`` (anything
    older, if ``None``); ``None`` when nothing qualifies."""
    mark = await store.export_mark(export_name) if export_name is not None else None
    if export_name is not None and mark is None:
        return None
    last = await _last_removable(store, before, mark)
    if last is None:
        return None
    return await store.purge(last, removal_event(before, export_name, mark))


async def _last_removable(store: AuditStore, before: datetime, mark: int | None) -> int | None:
    last = None
    async for record in store.records():
        if (mark is not None and record.seq > mark) or not recorded_before(record.body, before):
            break
        last = record.seq
    return last


def recorded_before(body: bytes, before: datetime) -> bool:
    """Whether the event was recorded before ``before``; not if it says no time."""
    try:
        recorded = orjson.loads(body).get("recorded")
        when = datetime.fromisoformat(recorded)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return False
    return when.tzinfo is not None and when < before


def removal_event(before: datetime, export_name: str | None, mark: int | None) -> Removal:
    """The ``audit-purge`` event's builder, given what the store finds under its lock."""
    kept = f"recorded before {before.isoformat()}"
    if export_name is None:
        why = f"{kept}, removed whether exported or not"
    else:
        why = f"{kept} and exported to {export_name!r} (mark {mark})"

    def build(first: int, through: int, head_hash: bytes) -> Mapping[str, Any]:
        return {
            "resourceType": "AuditEvent",
            "type": {"system": SUBTYPES, "code": "audit-purge"},
            "subtype": [{"system": SUBTYPES, "code": "audit-purge"}],
            "action": "D",
            "recorded": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "outcome": "0",
            "outcomeDesc": (
                f"audit records {first} to {through} removed ({why});"
                f" hash of record {through}: {head_hash.hex()}"
            ),
            "agent": [{"who": {"display": "rempart audit purge"}, "requestor": True}],
            "source": SOURCE,
        }

    return build
