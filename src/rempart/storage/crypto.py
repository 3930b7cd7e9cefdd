"""Encryption at rest of resource bodies: AES-256-GCM with a rotatable key ring.

Each row stores the id of the key that sealed it and ``nonce || ciphertext``; the
associated data is ``type/id/versionId`` so a body moved to another row fails to
open. Keys live outside the database: a key ring file created on first start with
0600 permissions, or one key given by the operator in ``REMPART_DATA_KEY``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rempart.errors import Category, RempartError

log = logging.getLogger("rempart.storage")
NONCE_BYTES = 12
RELOAD_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: bytes


def aad(type_: str, id_: str, version: int) -> bytes:
    return f"{type_}/{id_}/{version}".encode()


class KeyRing:
    """Data keys by id; one is active for new writes. Thread-safe."""

    def __init__(self, keys: dict[str, bytes], active: str, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._mtime = path.stat().st_mtime_ns if path else 0
        self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
        self._install(keys, active)

    def _install(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys or any(len(k) != 32 for k in keys.values()):
            raise RempartError(Category.FAULT, "Data key ring is malformed")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active

    @classmethod
    def from_env(cls, encoded: str) -> KeyRing:
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise RempartError(Category.FAULT, "REMPART_DATA_KEY is not base64") from None
        return cls({"env": key}, "env")

    @classmethod
    def open(cls, path: Path) -> KeyRing:
        """Load the key ring file, creating it (0600, in a 0700 folder) on first start.

        Creation is exclusive: when several worker processes start at once, exactly one
        ring is created and every process reads that one.
        """
        if not path.exists():
            ring = {
                "active": "k1",
                "keys": {"k1": base64.b64encode(secrets.token_bytes(32)).decode()},
            }
            create_exclusive(path, json.dumps(ring).encode())
        keys, active = _read_ring(path)
        return cls(keys, active, path)

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        self._follow_rotation()
        with self._lock:
            kid, cipher = self.active, self._ciphers[self.active]
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(kid, nonce + cipher.encrypt(nonce, plaintext, associated))

    def open_sealed(self, sealed: Sealed, associated: bytes) -> bytes:
        cipher = self._ciphers.get(sealed.key_id) or self._reload_for(sealed.key_id)
        nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, body, associated)
        except InvalidTag:
            raise RempartError(Category.FAULT, "Stored data failed its integrity check") from None

    def _reload_for(self, key_id: str) -> AESGCM:
        """A key written by another process (``rempart keys rotate``): read the file again."""
        if self._path is not None:
            self.reload()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise RempartError(Category.FAULT, "Stored data uses an unknown data key")
        return cipher

    def _follow_rotation(self) -> None:
        """Pick up, within a second, a key rotated by another process."""
        if self._path is None or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
        try:
            if self._path.stat().st_mtime_ns != self._mtime:
                self.reload()
        except (OSError, ValueError, KeyError, RempartError):
            # A key file being rewritten or damaged must not stop writes: keep the
            # keys already loaded, and say so; the next check tries again.
            log.warning("data key file unreadable; keeping the keys already loaded")

    def reload(self) -> None:
        if self._path is None:
            return
        mtime = self._path.stat().st_mtime_ns
        keys, active = _read_ring(self._path)
        with self._lock:
            self._install(keys, active)
            self._mtime = mtime

    def rotate(self) -> str:
        """Add a new key and make it active; old keys stay to open old rows."""
        if self._path is None:
            raise RempartError(Category.INCORRECT, "An operator-given key cannot be rotated")
        lock = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two rotations at once would both make "k2"
            keys, _ = _read_ring(self._path)
            kid = f"k{max(int(k[1:]) for k in keys) + 1}"
            keys[kid] = secrets.token_bytes(32)
            _write_ring(self._path, keys, kid)
        finally:
            os.close(fd)
        self.reload()
        return kid


def _read_ring(path: Path) -> tuple[dict[str, bytes], str]:
    data = json.loads(path.read_text())
    keys = {kid: base64.b64decode(value) for kid, value in data["keys"].items()}
    return keys, str(data["active"])


def _write_ring(path: Path, keys: dict[str, bytes], active: str) -> None:
    """Replace the ring atomically (rotation); readers see the old or the new file."""
    encoded = {kid: base64.b64encode(key).decode() for kid, key in keys.items()}
    tmp = _private_temp(path, json.dumps({"active": active, "keys": encoded}).encode())
    os.replace(tmp, path)


def create_exclusive(path: Path, content: bytes) -> bool:
    """Create ``path`` (0600, folder 0700) with ``content`` unless it exists; never a
    half-written file: the content is written aside, then linked into place."""
    tmp = _private_temp(path, content)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _private_temp(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def secret_file(path: Path, what: str) -> bytes:
    """A 32-byte secret kept in ``path``, created (0600, exclusively) on first use."""
    if not path.exists():
        create_exclusive(path, secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise RempartError(Category.FAULT, f"The {what} key file is damaged")
    return key
