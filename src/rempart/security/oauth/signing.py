"""The authorization server's signing keys: ES256 (RFC 7518 §3.4), rotatable, as JWKS.

The ring lives in ``keys/signing-keys.json`` (0600), apart from the data keys. The
newest key signs; older keys keep verifying tokens they signed until they are
dropped at a later rotation. Another process that meets an unknown ``kid`` reloads
the ring from disk (at most once a second), so a rotation reaches every worker.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from rempart.errors import Category, RempartError
from rempart.storage.crypto import create_exclusive

ALGORITHM = "ES256"
RELOAD_EVERY = 1.0
KEEP_RETIRED = 3
"""Retired keys kept for verification: tokens live minutes, rotations are rarer."""


def _new_key() -> tuple[str, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return f"s{secrets.token_hex(6)}", {"pem": pem.decode(), "created": time.time()}


class SigningKeys:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._loaded_at = 0.0
        if not path.exists():
            kid, key = _new_key()
            create_exclusive(path, json.dumps({"current": kid, "keys": {kid: key}}).encode())
        self._load()

    def _load(self) -> None:
        try:
            ring = json.loads(self._path.read_text())
            self._keys = {
                kid: serialization.load_pem_private_key(entry["pem"].encode(), None)
                for kid, entry in ring["keys"].items()
            }
            self.current: str = ring["current"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RempartError(Category.FAULT, "The signing key file is damaged") from exc
        self._loaded_at = time.monotonic()

    def private(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        key = self._keys[self.current]
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return self.current, key

    def public(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        if kid not in self._keys and time.monotonic() - self._loaded_at > RELOAD_EVERY:
            self._load()
        key = self._keys.get(kid)
        return key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else None

    def jwks(self) -> dict[str, Any]:
        """The public keys, as published at the ``jwks_uri``."""
        keys = []
        for kid, key in self._keys.items():
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}

    def rotate(self) -> str:
        """A new signing key; the previous ones stay for verification. Returns its kid."""
        ring = json.loads(self._path.read_text())
        kid, key = _new_key()
        ring["keys"][kid] = key
        ring["current"] = kid
        by_age = sorted(ring["keys"], key=lambda k: ring["keys"][k]["created"])
        for old in by_age[: max(0, len(by_age) - 1 - KEEP_RETIRED)]:
            del ring["keys"][old]
        temp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(ring, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self._path)
        self._load()
        return kid
