"""Audit records as RFC 5424 syslog messages (security/audit/rfc5424.py): header
fields, severity from the outcome, structured data escaping, BOM, octet framing."""

from __future__ import annotations

import hashlib
import re

from rempart.security.audit.records import GENESIS, canonical, chain
from rempart.security.audit.rfc5424 import (
    BOM,
    frame,
    header_field,
    message,
    param_value,
    structured_data,
    timestamp,
)

EVENT = {
    "resourceType": "AuditEvent",
    "recorded": "2026-03-01T10:20:30.123456Z",
    "outcome": "4",
    "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"}],
    "outcomeDesc": 'refusé "]\\',
}
HEADER = re.compile(
    rb"<(\d+)>1 (\S+) (\S+) rempart - (\S+)"
    rb' \[rempart@32473 seq="(\d+)" hash="([0-9a-f]{64})"\] '
)


def test_a_message_has_the_rfc_5424_header_structured_data_bom_and_body() -> None:
    (record,) = chain([EVENT], 11, GENESIS)
    syslog = message(record, "host-1")
    match = HEADER.match(syslog)
    assert match is not None
    pri, stamp, host, msgid, seq, digest = match.groups()
    assert int(pri) == 10 * 8 + 4  # authpriv, warning
    assert (stamp, host, msgid) == (b"2026-03-01T10:20:30.123456Z", b"host-1", b"search-type")
    assert (int(seq), digest.decode()) == (12, record.hash.hex())
    rest = syslog[match.end() :]
    assert rest == BOM + canonical(EVENT)
    assert hashlib.sha256(GENESIS + rest.removeprefix(BOM)).digest() == record.hash


def test_severity_follows_the_outcome() -> None:
    def pri(outcome: object) -> int:
        (record,) = chain([{**EVENT, "outcome": outcome}], 0, GENESIS)
        return int(message(record, "h").split(b">")[0][1:])

    assert [pri(o) - 80 for o in ("0", "4", "8", "12", "x", None)] == [6, 4, 3, 2, 5, 5]


def test_an_event_without_time_or_subtype_gets_nil_values() -> None:
    (record,) = chain([{"n": 1}], 0, GENESIS)
    assert message(record, "").startswith(b"<85>1 - - rempart - - [rempart@32473 seq=")


def test_structured_data_values_are_escaped() -> None:
    assert param_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    assert structured_data("x@1", {"k": 'v"]'}) == '[x@1 k="v\\"\\]"]'


def test_header_fields_are_printable_ascii_without_spaces() -> None:
    assert header_field("my host\té", 255) == "my_host__"
    assert header_field("a" * 40, 32) == "a" * 32
    assert header_field(None, 32) == header_field("", 32) == "-"


def test_timestamps_are_utc_with_microseconds() -> None:
    assert timestamp("2026-03-01T12:00:00+02:00") == "2026-03-01T10:00:00.000000Z"
    assert timestamp("2026-03-01T12:00:00") == "-"  # no offset: not guessed
    assert timestamp("yesterday") == timestamp(None) == "-"


def test_octet_counting_frames_by_bytes_not_characters() -> None:
    assert frame("é".encode()) == b"2 \xc3\xa9"
    (record,) = chain([EVENT], 0, GENESIS)
    syslog = message(record, "h")
    framed = frame(syslog)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(syslog) and rest == syslog
