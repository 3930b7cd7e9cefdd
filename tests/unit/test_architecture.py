"""The layering rules of design.md, checked with import-linter on every run."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_the_contracts_cover_the_design_rules() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = {c["name"]: set(c["forbidden_modules"]) for c in config["contracts"]}
    assert any({"rempart.web", "rempart.cli"} <= mods for mods in forbidden.values())
    assert any({"starlette", "psycopg", "sqlite3"} <= mods for mods in forbidden.values())
    assert any(
        {"rempart.storage.sqlite", "rempart.storage.postgres"} <= mods
        for mods in forbidden.values()
    )
