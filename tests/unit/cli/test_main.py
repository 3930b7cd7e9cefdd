import base64
from pathlib import Path

import pytest

from rempart.cli.main import main


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_serve_refuses_non_loopback_hosts(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", host, "--data-dir", str(tmp_path)]) == 2
    assert "refusing to bind a non-loopback address" in capsys.readouterr().err
    assert not (tmp_path / "rempart.db").exists()


def test_rotation_of_an_operator_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REMPART_DATA_KEY", base64.b64encode(b"k" * 32).decode())
    assert main(["keys", "rotate", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rempart: ") and "Traceback" not in err
