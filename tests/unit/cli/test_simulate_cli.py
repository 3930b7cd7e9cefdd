"""``rempart simulate`` refuses what it must before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from rempart.cli.main import main


def test_a_non_loopback_server_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "--url", "http://192.0.2.10:8080", "--hospital", str(tmp_path)]
    assert main([*args, "--data-dir", str(tmp_path / "data")]) == 1
    assert "loopback" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_an_unknown_attack_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--hospital", str(tmp_path), "--attack", "nope"])
    assert exit_.value.code == 2
