"""The audit chain's verification on in-memory rows: each kind of tampering is caught
and the first bad record named (security/audit/verify.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from rempart.security.audit.checkpoints import CheckpointSigner, load_public_key
from rempart.security.audit.records import (
    GENESIS,
    Checkpoint,
    StoredRecord,
    canonical,
    chain,
    chain_hash,
)
from rempart.security.audit.verify import Verdict, verify

SIGNER_KEY = Ed25519PrivateKey.generate()
SIGNER = CheckpointSigner(SIGNER_KEY)
PUBLIC = SIGNER_KEY.public_key()


def events(n: int) -> list[dict[str, object]]:
    return [{"resourceType": "AuditEvent", "id": str(i), "outcome": "0"} for i in range(n)]


def rows(n: int) -> list[StoredRecord]:
    return chain(events(n), 0, GENESIS)


def signed_at(records: list[StoredRecord], count: int) -> Checkpoint:
    return SIGNER.sign(count, records[count - 1].hash if count else GENESIS)


def bad(first: int | None, reason: str) -> Verdict:
    return Verdict(False, first, reason)


def test_canonical_encoding_sorts_keys_and_is_compact() -> None:
    assert canonical({"b": 1, "a": {"d": 2, "c": [1]}}) == b'{"a":{"c":[1],"d":2},"b":1}'


def test_record_hash_is_sha256_of_previous_hash_then_body() -> None:
    first, second = rows(2)
    assert first.prev_hash == GENESIS == bytes(32)
    assert first.hash == chain_hash(GENESIS, first.body)
    assert second.prev_hash == first.hash
    assert (first.seq, second.seq) == (1, 2)


def test_an_untouched_chain_verifies() -> None:
    records = rows(10)
    verdict = verify(records, [signed_at(records, 4), signed_at(records, 10)], PUBLIC)
    assert verdict == Verdict(True, None, "the chain holds", 10, 2)


def test_an_empty_store_verifies() -> None:
    assert verify([], [], PUBLIC).ok
    assert verify([], [SIGNER.sign(0, GENESIS)], PUBLIC).ok


def test_a_modified_body_is_named() -> None:
    records = rows(6)
    records[3] = dataclasses.replace(records[3], body=records[3].body.replace(b"3", b"4"))
    assert verify(records, [], PUBLIC) == bad(4, "record 4 was modified")


def test_a_deleted_record_is_named() -> None:
    records = rows(6)
    del records[2]
    assert verify(records, [], PUBLIC) == bad(3, "record 3 was deleted")


def test_an_inserted_record_with_its_own_number_is_named() -> None:
    records = rows(4)
    intruder = StoredRecord(0, b"{}", GENESIS, chain_hash(GENESIS, b"{}"))
    assert verify([intruder, *records], [], PUBLIC) == bad(
        0, "record 0 is out of sequence (inserted)"
    )


def test_a_record_inserted_and_chained_is_found_where_the_chain_breaks() -> None:
    """Renumbered and correctly hashed, the intruder itself looks sound; the record
    after it no longer follows it."""
    records = rows(5)
    intruder = chain([{"forged": True}], 2, records[1].hash)[0]
    shifted = [dataclasses.replace(r, seq=r.seq + 1) for r in records[2:]]
    verdict = verify([*records[:2], intruder, *shifted], [], PUBLIC)
    assert verdict == bad(4, "record 4 does not follow record 3 (inserted, replaced or reordered)")


def test_reordered_records_are_named() -> None:
    records = rows(6)
    records[1], records[4] = (
        dataclasses.replace(records[4], seq=2),
        dataclasses.replace(records[1], seq=5),
    )
    assert verify(records, [], PUBLIC) == bad(
        2, "record 2 does not follow record 1 (inserted, replaced or reordered)"
    )


def test_swapped_bodies_are_named_as_modified() -> None:
    records = rows(6)
    one, four = records[1], records[4]
    records[1] = dataclasses.replace(one, body=four.body)
    records[4] = dataclasses.replace(four, body=one.body)
    assert verify(records, [], PUBLIC) == bad(2, "record 2 was modified")


def test_a_truncated_tail_past_the_last_checkpoint_is_named() -> None:
    records = rows(8)
    checkpoints = [signed_at(records, 3), signed_at(records, 7)]
    assert verify(records[:5], checkpoints, PUBLIC) == bad(
        6, "records 6 to 7 were removed (the last checkpoint signed 7 records)"
    )


def test_a_tail_cut_after_the_last_checkpoint_cannot_be_seen() -> None:
    """The limit of checkpoints, stated by a test: the unsigned tail is not proven."""
    records = rows(8)
    assert verify(records[:6], [signed_at(records, 5)], PUBLIC).ok


def test_a_consistently_rewritten_chain_fails_at_the_checkpoint() -> None:
    records = rows(8)
    checkpoints = [signed_at(records, 3), signed_at(records, 6)]
    rewritten = records[:4] + chain(events(4)[::-1], 4, records[3].hash)
    assert verify(rewritten, checkpoints, PUBLIC) == bad(
        4,
        "records 4 to 6 were rewritten (the chain does not match the checkpoint of 6 records)",
    )


def test_a_modified_checkpoint_is_refused() -> None:
    records = rows(5)
    forged = dataclasses.replace(signed_at(records, 5), count=3)
    assert verify(records, [forged], PUBLIC) == bad(
        None, "the checkpoint of 3 records is not signed"
    )


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    records = rows(5)
    other = CheckpointSigner(Ed25519PrivateKey.generate())
    assert not verify(records, [other.sign(5, records[4].hash)], PUBLIC).ok


def test_the_signing_key_file_is_private_and_its_public_half_verifies(tmp_path: Path) -> None:
    signer = CheckpointSigner.open(tmp_path / "keys")
    assert (tmp_path / "keys" / "audit-signing.key").stat().st_mode & 0o777 == 0o600
    again = CheckpointSigner.open(tmp_path / "keys")  # the same key, not a new one
    records = rows(3)
    public = load_public_key(tmp_path / "keys" / "audit-signing.pub")
    checkpoints = [signer.sign(3, records[2].hash), again.sign(3, records[2].hash)]
    assert verify(records, checkpoints, public).ok


@given(size=st.integers(1, 30), data=st.data())
def test_any_changed_byte_is_named(size: int, data: st.DataObject) -> None:
    records = rows(size)
    target = data.draw(st.integers(0, size - 1))
    body = bytearray(records[target].body)
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] ^= data.draw(st.integers(1, 255))
    records[target] = dataclasses.replace(records[target], body=bytes(body))
    verdict = verify(records, [signed_at(records, size)], PUBLIC)
    assert (verdict.ok, verdict.first_bad) == (False, target + 1)


@given(size=st.integers(2, 30), data=st.data())
def test_any_deletion_before_the_checkpoint_is_named(size: int, data: st.DataObject) -> None:
    records = rows(size)
    checkpoint = signed_at(records, size)
    target = data.draw(st.integers(0, size - 1))
    del records[target]
    verdict = verify(records, [checkpoint], PUBLIC)
    assert (verdict.ok, verdict.first_bad) == (False, target + 1)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_checkpoints_in_any_order(count: int) -> None:
    records = rows(5)
    checkpoints = [signed_at(records, n) for n in range(count, 0, -1)]
    assert verify(records, checkpoints, PUBLIC).ok


# --- a purged chain: it starts past record 1, anchored on a signed checkpoint ---


def purged(count: int, through: int) -> tuple[list[StoredRecord], list[Checkpoint]]:
    """``count`` records, checkpoints at 3 and ``through`` and ``count``, records up to
    ``through`` removed as ``rempart audit purge`` does."""
    records = rows(count)
    checkpoints = [signed_at(records, 3), signed_at(records, through), signed_at(records, count)]
    return records[through:], checkpoints


def test_a_purged_chain_anchored_on_a_checkpoint_verifies() -> None:
    records, checkpoints = purged(12, 6)
    assert verify(records, checkpoints, PUBLIC) == Verdict(
        True, None, "the chain holds", 6, 3, first=7
    )


def test_a_purged_chain_without_its_anchor_names_the_records_missing() -> None:
    records, checkpoints = purged(12, 6)
    del checkpoints[1]
    assert verify(records, checkpoints, PUBLIC) == bad(
        4, "records 4 to 6 were deleted (no signed checkpoint of 6 records anchors record 7)"
    )


def test_the_first_record_kept_after_a_purge_cannot_go_unseen() -> None:
    records, checkpoints = purged(12, 6)
    assert verify(records[1:], checkpoints, PUBLIC) == bad(
        7, "record 7 was deleted (no signed checkpoint of 7 records anchors record 8)"
    )


def test_an_anchor_of_the_wrong_chain_is_refused() -> None:
    """A checkpoint of the right count but another head does not anchor the chain."""
    records, checkpoints = purged(12, 6)
    checkpoints[1] = SIGNER.sign(6, bytes(32))
    assert not verify(records, checkpoints, PUBLIC).ok


def test_tampering_after_a_purge_is_still_named() -> None:
    records, checkpoints = purged(12, 6)
    records[2] = dataclasses.replace(records[2], body=records[2].body.replace(b"8", b"9"))
    assert verify(records, checkpoints, PUBLIC) == bad(9, "record 9 was modified")
    records, checkpoints = purged(12, 6)
    assert verify(records[:-2], checkpoints, PUBLIC) == bad(
        11, "records 11 to 12 were removed (the last checkpoint signed 12 records)"
    )
