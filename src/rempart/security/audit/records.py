"""Audit records: the canonical encoding of an event and the hash chain over it.

A record's body is its AuditEvent-like dict as JSON with sorted keys and no
whitespace (orjson, ``OPT_SORT_KEYS``), so that the same event always gives the same
bytes. Record ``n`` stores ``hash_n = SHA-256(hash_{n-1} || body_n)``; the first
record chains to :data:`GENESIS`, 32 zero bytes. Changing, removing, adding or moving
any record changes every hash after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = bytes(32)
"""The previous hash of record 1."""


@dataclass(frozen=True)
class StoredRecord:
    """One row of the audit store, as written and as read back."""

    seq: int
    body: bytes
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain held ``count`` records ending in ``head_hash``."""

    count: int
    head_hash: bytes
    at: str
    """When it was signed, ISO 8601 in UTC."""
    signature: bytes


def canonical(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    return hashlib.sha256(prev_hash + body).digest()


def chain(events: Sequence[Mapping[str, Any]], last_seq: int, head: bytes) -> list[StoredRecord]:
    """The records of ``events``, numbered and chained after record ``last_seq`` whose
    hash is ``head`` (``0`` and :data:`GENESIS` on an empty store)."""
    return chain_bodies([canonical(event) for event in events], last_seq, head)


def chain_bodies(bodies: Sequence[bytes], last_seq: int, head: bytes) -> list[StoredRecord]:
    """:func:`chain` of bodies already encoded with :func:`canonical`."""
    records = []
    for seq, body in enumerate(bodies, start=last_seq + 1):
        digest = chain_hash(head, body)
        records.append(StoredRecord(seq, body, head, digest))
        head = digest
    return records
