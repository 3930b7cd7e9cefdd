"""Every official FHIR R4 example round-trips through a real server over HTTP.

FHIR R4 §3.1.0.4 (update, create-on-update), §3.1.0.2 (read), §3.1.0.3 (vread). Each
example is PUT at its own id and must come back unchanged apart from
``meta.versionId`` and ``meta.lastUpdated``, with decimals kept exactly as written
(``72.50`` stays ``72.50``). One server process per backend serves all examples; the
failures are collected so that one run names every example that does not survive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import EXAMPLES, ServerProcess

if not EXAMPLES.is_dir():
    pytest.skip(f"official FHIR R4 examples not found at {EXAMPLES}", allow_module_level=True)

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
FHIR_JSON = "application/fhir+json"
# Three official examples (the definition Bundles, up to 35 MB) are larger than the
# 4 MiB default body limit; the server under test is started with room for them.
BODY_LIMIT = 64 * 1024 * 1024

# Official examples the server rightly rejects, with the real reason. The validator
# (structure and required bindings) accepts all 402 today, so every one must be stored.
KNOWN_INVALID: dict[str, str] = {}
# Types nobody writes through the API: the audit trail is recorded by the server itself
# (docs/audit.md, "Searching the audit"); their examples must be refused with 405.
SERVER_WRITTEN = {"AuditEvent"}


@pytest.fixture(autouse=True)
def _large_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Autouse, so it runs before ``server`` copies the environment into the process.
    monkeypatch.setenv("REMPART_MAX_BODY_BYTES", str(BODY_LIMIT))


@pytest.fixture
def examples_server(server: ServerProcess) -> Iterator[ServerProcess]:
    yield server
    # Whatever the answers said, the server must not have logged an unexpected error.
    server.stop()
    logged = server.log.read_text(errors="replace")
    assert "Traceback" not in logged, logged[-3000:]


def test_the_official_examples_are_all_there() -> None:
    assert len(EXAMPLE_FILES) == 402
    assert set(KNOWN_INVALID) <= {path.name for path in EXAMPLE_FILES}


def test_every_official_example_round_trips(examples_server: ServerProcess) -> None:
    headers = {"content-type": FHIR_JSON, "accept": FHIR_JSON, **examples_server.headers}
    with httpx.Client(base_url=examples_server.base, headers=headers, timeout=120) as http:
        failures = [f"{path.name}: {problem}" for path, problem in _problems(http)]
    assert not failures, f"{len(failures)} of {len(EXAMPLE_FILES)} examples failed:\n" + "\n".join(
        failures
    )


def _problems(http: httpx.Client) -> Iterator[tuple[Path, str]]:
    for path in EXAMPLE_FILES:
        check = _check_rejected if path.name in KNOWN_INVALID else _check_round_trip
        if path.name.split("-")[0] in SERVER_WRITTEN:
            check = _check_refused
        problem = check(http, path)
        if problem is not None:
            yield path, problem


def _check_rejected(http: httpx.Client, path: Path) -> str | None:
    original = _load(path.read_bytes())
    answer = _write(http, original, path.read_bytes())
    if answer.status_code not in (400, 422):
        return f"known invalid ({KNOWN_INVALID[path.name]}) but got {answer.status_code}"
    if _load(answer.content).get("resourceType") != "OperationOutcome":
        return "rejected without an OperationOutcome"
    return None


def _check_refused(http: httpx.Client, path: Path) -> str | None:
    answer = _write(http, _load(path.read_bytes()), path.read_bytes())
    if answer.status_code != 405:
        return f"written by the server only, but the write answered {answer.status_code}"
    return None


def _check_round_trip(http: httpx.Client, path: Path) -> str | None:
    raw = path.read_bytes()
    original = _load(raw)
    written = _write(http, original, raw)
    if written.status_code != 201:
        return f"write answered {written.status_code}: {written.text[:300]}"
    url = f"/{original['resourceType']}/{_written_id(original, written)}"
    read = http.get(url)
    if read.status_code != 200:
        return f"read answered {read.status_code}"
    return _compare(original, read) or _check_versions(http, url, read, written)


def _write(http: httpx.Client, original: dict[str, Any], raw: bytes) -> httpx.Response:
    if "id" in original:
        return http.put(f"/{original['resourceType']}/{original['id']}", content=raw)
    return http.post(f"/{original['resourceType']}", content=raw)


def _written_id(original: dict[str, Any], written: httpx.Response) -> str:
    if "id" in original:
        return str(original["id"])
    # Location: [base]/[type]/[id]/_history/[vid]
    return written.headers["location"].split("/")[-3]


def _compare(original: dict[str, Any], read: httpx.Response) -> str | None:
    stored = _load(read.content)
    expected = {**original, "id": stored.get("id")} if "id" not in original else original
    difference = _first_difference(_exact(_content(expected)), _exact(_content(stored)), "")
    return None if difference is None else f"stored resource differs at {difference}"


def _check_versions(
    http: httpx.Client, url: str, read: httpx.Response, written: httpx.Response
) -> str | None:
    if _load(read.content).get("meta", {}).get("versionId") != "1":
        return "a first write is not version 1"
    if written.content != read.content:
        return "the write's representation differs from the read"
    vread = http.get(f"{url}/_history/1")
    if vread.status_code != 200 or vread.content != read.content:
        return f"vread of version 1 answered {vread.status_code} and differs from the read"
    return None


def _load(raw: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw, parse_float=Decimal)
    return loaded


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without what the server stamps: meta.versionId and meta.lastUpdated."""
    meta = {
        k: v for k, v in resource.get("meta", {}).items() if k not in {"versionId", "lastUpdated"}
    }
    rest = {k: v for k, v in resource.items() if k != "meta"}
    return {**rest, "meta": meta} if meta else rest


def _exact(value: Any) -> Any:
    """``value`` with every scalar tagged by its type and spelt as written.

    ``Decimal("72.50") == Decimal("72.5")`` and ``True == 1`` in Python, so a plain
    ``==`` would miss a lost trailing zero or a number turned into a boolean.
    """
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_exact(item) for item in value]
    return (type(value).__name__, str(value))


def _first_difference(expected: Any, actual: Any, where: str) -> str | None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(expected.keys() | actual.keys()):
            if key not in expected or key not in actual:
                return f"{where}.{key} ({'added' if key in actual else 'lost'})"
            found = _first_difference(expected[key], actual[key], f"{where}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            found = _first_difference(left, right, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    return None if expected == actual else f"{where or '.'}: expected {expected}, got {actual}"
