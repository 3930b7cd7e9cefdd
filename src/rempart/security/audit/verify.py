"""``rempart audit verify``'s judgement: does the stored chain prove itself?

Pure: it reads records (in ``seq`` order, as the store returns them) and checkpoints
and says whether they hold, or names the first record that does not and why.

- a body, or a stored hash, changed: the record's hash is not SHA-256(prev || body);
- a record removed: a gap in the sequence numbers;
- a record added or moved: its previous hash is not the hash of the record before;
- the tail cut off: fewer records than the last checkpoint signed;
- the chain rewritten consistently: the head at a checkpoint's count is not the one
  signed (the rewrite lies after the previous checkpoint);
- a checkpoint forged or changed: its Ed25519 signature does not hold.

A purged chain (``rempart audit purge``) starts at a record F > 1. It is accepted if and
only if a signed checkpoint of F-1 records has, as its head hash, record F's previous
hash: that checkpoint anchors the rest, and checkpoints of fewer records are skipped as
covering removed records. Without such an anchor, the missing records are named as
deleted, from just after the last checkpoint before them.

What cannot be seen without an anchor outside the database: records appended past the
last checkpoint by someone who chains them correctly, and the removal of the tail
together with the checkpoints covering it (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rempart.security.audit.checkpoints import signature_holds
from rempart.security.audit.records import GENESIS, Checkpoint, StoredRecord, chain_hash


@dataclass(frozen=True)
class Verdict:
    ok: bool
    first_bad: int | None
    reason: str
    records: int = 0
    checkpoints: int = 0
    first: int = 1
    """The first record stored: above 1 once records were purged."""


def _bad(first_bad: int | None, reason: str) -> Verdict:
    return Verdict(False, first_bad, reason)


class ChainCheck:
    """The verification fed one record at a time, so a large store is streamed."""

    def __init__(self, checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey) -> None:
        self._checkpoints = sorted(checkpoints, key=lambda c: c.count)
        self._public_key = public_key
        self._last_seq = 0
        self._head = GENESIS
        self._next_checkpoint = 0
        self._proven = 0  # the count of the last checkpoint the chain matched
        self._first: int | None = None
        self.verdict: Verdict | None = self._signatures()
        if self.verdict is None:
            self.verdict = self._at_checkpoints()  # those at count 0

    def _signatures(self) -> Verdict | None:
        for checkpoint in self._checkpoints:
            if not signature_holds(self._public_key, checkpoint):
                return _bad(None, f"the checkpoint of {checkpoint.count} records is not signed")
        return None

    def feed(self, record: StoredRecord) -> Verdict | None:
        """The first failure, once found; ``None`` while everything holds."""
        if self.verdict is None:
            self.verdict = self._record(record) or self._at_checkpoints()
        return self.verdict

    def _record(self, record: StoredRecord) -> Verdict | None:
        if self._first is None:
            self._first = record.seq
            if record.seq > 1:
                return self._anchor(record)
        expected = self._last_seq + 1
        if record.seq > expected:
            return _bad(expected, f"record {expected} was deleted")
        if record.seq < expected:
            return _bad(record.seq, f"record {record.seq} is out of sequence (inserted)")
        if chain_hash(record.prev_hash, record.body) != record.hash:
            return _bad(record.seq, f"record {record.seq} was modified")
        if record.prev_hash != self._head:
            return _bad(
                record.seq,
                f"record {record.seq} does not follow record {self._last_seq}"
                " (inserted, replaced or reordered)",
            )
        self._last_seq, self._head = record.seq, record.hash
        return None

    def _anchor(self, record: StoredRecord) -> Verdict | None:
        """Start a purged chain at ``record``, on the checkpoint that signed its
        predecessor's hash; otherwise name the records missing before it."""
        before = record.seq - 1
        signed = [c for c in self._checkpoints if c.count == before]
        if not any(c.head_hash == record.prev_hash for c in signed):
            first = max((c.count for c in self._checkpoints if c.count < before), default=0) + 1
            missing = (
                f"record {first} was" if first == before else f"records {first} to {before} were"
            )
            return _bad(
                first,
                f"{missing} deleted"
                f" (no signed checkpoint of {before} records anchors record {record.seq})",
            )
        self._last_seq, self._head, self._proven = before, record.prev_hash, before
        while self._checkpoints[self._next_checkpoint].count < before:
            self._next_checkpoint += 1  # they cover removed records
        return self._at_checkpoints() or self._record(record)

    def _at_checkpoints(self) -> Verdict | None:
        while self._next_checkpoint < len(self._checkpoints):
            checkpoint = self._checkpoints[self._next_checkpoint]
            if checkpoint.count != self._last_seq:
                return None
            if checkpoint.head_hash != self._head:
                first = self._proven + 1
                return _bad(
                    first,
                    f"records {first} to {checkpoint.count} were rewritten"
                    f" (the chain does not match the checkpoint of {checkpoint.count} records)",
                )
            self._proven = checkpoint.count
            self._next_checkpoint += 1
        return None

    def finish(self) -> Verdict:
        if self.verdict is not None:
            return self.verdict
        signed = self._checkpoints[-1].count if self._checkpoints else 0
        if self._last_seq < signed:
            first = self._last_seq + 1
            return _bad(
                first,
                f"records {first} to {signed} were removed"
                f" (the last checkpoint signed {signed} records)",
            )
        first = self._first or 1
        records = self._last_seq - first + 1 if self._last_seq else 0
        return Verdict(True, None, "the chain holds", records, len(self._checkpoints), first)


def verify(
    records: Iterable[StoredRecord],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
) -> Verdict:
    check = ChainCheck(checkpoints, public_key)
    for record in records:
        if check.feed(record) is not None:
            break
    return check.finish()
