import base64
import stat
from pathlib import Path

import pytest

from rempart.errors import RempartError
from rempart.storage.crypto import KeyRing, Sealed, aad


def test_key_ring_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "data-keys.json"
    KeyRing.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_seal_binds_the_row(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "k.json")
    sealed = ring.seal(b"secret", aad("Patient", "a", 1))
    assert b"secret" not in sealed.blob
    assert ring.open_sealed(sealed, aad("Patient", "a", 1)) == b"secret"
    with pytest.raises(RempartError):
        ring.open_sealed(sealed, aad("Patient", "b", 1))
    flipped = bytes([sealed.blob[0] ^ 1]) + sealed.blob[1:]
    with pytest.raises(RempartError):
        ring.open_sealed(Sealed(sealed.key_id, flipped), aad("Patient", "a", 1))


def test_rotation_keeps_old_keys_and_other_processes_follow(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    server, operator = KeyRing.open(path), KeyRing.open(path)
    old = server.seal(b"old", b"ad")
    new_kid = operator.rotate()
    assert new_kid == "k2" and operator.active == "k2"
    fresh = operator.seal(b"new", b"ad")
    assert server.open_sealed(fresh, b"ad") == b"new"  # unknown kid: reloads the file
    assert server.active == "k2"
    assert operator.open_sealed(old, b"ad") == b"old"


def test_operator_key_from_env() -> None:
    ring = KeyRing.from_env(base64.b64encode(b"k" * 32).decode())
    assert ring.open_sealed(ring.seal(b"x", b"a"), b"a") == b"x"
    with pytest.raises(RempartError):
        ring.rotate()
    with pytest.raises(RempartError):
        KeyRing.from_env("not base64!")
    with pytest.raises(RempartError):
        KeyRing.from_env(base64.b64encode(b"short").decode())


def test_a_damaged_key_file_keeps_the_loaded_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "k.json"
    ring = KeyRing.open(path)
    good = path.read_text()
    path.write_text(good[:20])
    monkeypatch.setattr("rempart.storage.crypto.RELOAD_CHECK_SECONDS", 0.0)
    ring._next_check = 0.0
    sealed = ring.seal(b"still", b"ad")  # does not raise: old keys kept
    assert ring.open_sealed(sealed, b"ad") == b"still"
    path.write_text(good)


def test_concurrent_rotations_make_distinct_keys(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "k.json"
    KeyRing.open(path)
    with ThreadPoolExecutor(4) as pool:
        kids = list(pool.map(lambda _: KeyRing.open(path).rotate(), range(4)))
    assert sorted(kids) == ["k2", "k3", "k4", "k5"]
    assert KeyRing.open(path).active == "k5"
