"""Checkpoints: the count and head hash of the chain, signed with Ed25519.

The signing key is its own file, ``keys/audit-signing.key`` (0600), apart from the
data keys: whoever can read the database and even the data keys cannot forge a
checkpoint. The public half, ``keys/audit-signing.pub``, is what ``rempart audit
verify`` needs; an operator should keep a copy away from the server (``--public-key``),
since someone able to replace both files could re-sign a rewritten chain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from rempart.errors import Category, RempartError
from rempart.security.audit.records import Checkpoint
from rempart.storage.crypto import create_exclusive

KEY_FILE = "audit-signing.key"
PUBLIC_FILE = "audit-signing.pub"
_DOMAIN = b"rempart-audit-checkpoint-v1\x00"


def signed_message(count: int, head_hash: bytes, at: str) -> bytes:
    """The exact bytes signed: a domain label, then the fields as canonical JSON."""
    fields = {"count": count, "head": head_hash.hex(), "at": at}
    return _DOMAIN + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


class CheckpointSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def open(cls, keys_dir: Path) -> CheckpointSigner:
        """The signing key in ``keys_dir``, created (with its public half) on first use."""
        path = keys_dir / KEY_FILE
        if not path.exists():
            create_exclusive(path, Ed25519PrivateKey.generate().private_bytes_raw())
        try:
            key = Ed25519PrivateKey.from_private_bytes(path.read_bytes())
        except ValueError:
            raise RempartError(Category.FAULT, "The audit signing key file is damaged") from None
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        create_exclusive(keys_dir / PUBLIC_FILE, public)
        return cls(key)

    def sign(self, count: int, head_hash: bytes) -> Checkpoint:
        at = datetime.now(UTC).isoformat()
        signature = self._key.sign(signed_message(count, head_hash, at))
        return Checkpoint(count, head_hash, at, signature)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(path.read_bytes())
    except (OSError, ValueError):
        raise RempartError(Category.FAULT, f"Cannot read the audit public key {path}") from None


def signature_holds(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    message = signed_message(checkpoint.count, checkpoint.head_hash, checkpoint.at)
    try:
        public_key.verify(checkpoint.signature, message)
    except InvalidSignature:
        return False
    return True
