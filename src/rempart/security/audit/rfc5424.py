"""Audit records as RFC 5424 syslog messages, framed by octet counting.

One message per record (RFC 5424 §6): ``<PRI>1 TIMESTAMP HOSTNAME rempart - MSGID
[rempart@32473 seq="…" hash="…"] BOM MSG``, where

- PRI is facility ``authpriv`` (10: security and authorization messages) times 8 plus a
  severity from the AuditEvent outcome: 0 → informational (6), 4 → warning (4),
  8 → error (3), 12 → critical (2), anything else → notice (5);
- TIMESTAMP is the event's ``recorded`` time, in UTC (``-`` if it has none);
- MSGID is the event's first subtype code (``read``, ``search-type``, ``token``…);
- the structured data carries the record's ``seq`` and ``hash`` (hex), escaped as
  §6.3.3 says; 32473 is the enterprise number RFC 5612 reserves for examples, Rempart
  having none of its own;
- MSG is the stored body itself (canonical JSON, UTF-8, after the BOM §6.4 asks for), so
  that a SIEM can check ``hash = SHA-256(previous hash || MSG)``.

Framing (RFC 6587 §3.4.1, and RFC 5425 §4.3 over TLS): ``MSG-LEN SP SYSLOG-MSG``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from rempart.security.audit.records import StoredRecord

FACILITY = 10
"""authpriv."""
SEVERITIES = {"0": 6, "4": 4, "8": 3, "12": 2}
NOTICE = 5
SD_ID = "rempart@32473"
APP_NAME = "rempart"
BOM = b"\xef\xbb\xbf"
NIL = "-"


def message(record: StoredRecord, hostname: str) -> bytes:
    """The RFC 5424 message of one stored record."""
    event = _event(record.body)
    pri = FACILITY * 8 + SEVERITIES.get(str(event.get("outcome")), NOTICE)
    header = " ".join(
        [
            f"<{pri}>1",
            timestamp(event.get("recorded")),
            header_field(hostname, 255),
            APP_NAME,
            NIL,
            header_field(_subtype(event), 32),
        ]
    )
    data = structured_data(SD_ID, {"seq": str(record.seq), "hash": record.hash.hex()})
    return f"{header} {data} ".encode("ascii") + BOM + record.body


def frame(syslog_message: bytes) -> bytes:
    """Octet counting: the message's length in bytes, a space, the message."""
    return b"%d %b" % (len(syslog_message), syslog_message)


def structured_data(sd_id: str, params: dict[str, str]) -> str:
    pairs = "".join(f' {name}="{param_value(value)}"' for name, value in params.items())
    return f"[{sd_id}{pairs}]"


def param_value(value: str) -> str:
    """§6.3.3: ``"``, ``\\`` and ``]`` are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def header_field(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces (§6), at most ``limit``
    characters; others are replaced by ``_``; ``-`` when empty."""
    if not value:
        return NIL
    return "".join(c if "!" <= c <= "~" else "_" for c in value[:limit])


def timestamp(recorded: object) -> str:
    """§6.2.3: RFC 3339 with at most six fractional digits; given in UTC."""
    if not isinstance(recorded, str):
        return NIL
    try:
        when = datetime.fromisoformat(recorded)
    except ValueError:
        return NIL
    if when.tzinfo is None:
        return NIL
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def _subtype(event: dict[str, Any]) -> str | None:
    subtypes = event.get("subtype")
    if isinstance(subtypes, list) and subtypes and isinstance(subtypes[0], dict):
        code = subtypes[0].get("code")
        return code if isinstance(code, str) else None
    return None
