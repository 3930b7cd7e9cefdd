"""The two ways SQLite reads a page (storage/search_run.py) find the same resources.

A search without a driving index is first tried "dense" (scan the type in seq order,
probe each resource with correlated EXISTS) and falls back to collecting matches with
``seq IN (SELECT …)``. Both are compiled from the same query; this compares them on
the official examples, so that neither can drift from the other.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from conftest import EXAMPLES
from rempart.config import load_settings
from rempart.fhir.search.parse import parse_search
from rempart.rest.common import renderer
from rempart.rest.context import Context
from rempart.storage.open import open_blind_index, open_store
from rempart.storage.ports import SearchRequest, WriteRequest, now_micros
from rempart.storage.search_run import dense_applies, run_search
from rempart.storage.sqlite.store import _drive

QUERIES = [  # (type, query, how many official examples match: never all empty)
    ("Patient", "family=solo"),
    ("Patient", "name=sol,ever&gender=female"),
    ("Patient", "birthdate=ge1970&birthdate=lt1990"),
    ("Observation", "subject:Patient.gender=male"),
    ("Observation", "date=ge2012&date=lt2014"),
    ("Observation", "value-quantity=gt100"),
    ("Observation", "code:not=http://loinc.org|29463-7"),
    ("Observation", "status=final&category=vital-signs"),
    ("Patient", "_has:Observation:patient:status=final"),
    ("Patient", "_has:Observation:patient:_has:Provenance:target:agent-type=author"),
    ("Observation", "subject:Patient._has:Observation:patient:status=final"),
    ("Encounter", "date=2015-01"),
    ("Condition", "clinical-status=active&onset-date=le2013"),
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    if not EXAMPLES.is_dir():
        pytest.skip(f"official examples not found at {EXAMPLES}")
    folder = tmp_path_factory.mktemp("forms")
    settings = load_settings({}, data_dir=str(folder))

    async def load() -> None:
        from rempart.fhir.validation import FhirkitValidator
        from rempart.rest.paging import CursorSigner

        store = await open_store(settings)
        ctx = Context(store, FhirkitValidator(), settings.limits, CursorSigner(b"k" * 32))
        for path in sorted(EXAMPLES.glob("*.json")):
            try:
                resource = ctx.validator.load(path.read_bytes())
            except Exception:  # noqa: BLE001 - a few official examples are invalid
                continue
            if "id" in resource and resource["resourceType"] != "Bundle":
                type_, id_ = resource["resourceType"], resource["id"]
                render = renderer(ctx, resource, id_)
                await store.write(WriteRequest(type_, id_, render))
        await store.close()

    asyncio.run(load())
    return folder / "rempart.db", open_blind_index(settings)


@pytest.mark.parametrize(("type_", "params"), QUERIES)
def test_dense_and_collected_pages_agree(
    database: tuple[Path, object], type_: str, params: str
) -> None:
    path, blind = database
    query = parse_search((type_,), parse_qsl(params))
    assert dense_applies(query, blind)  # type: ignore[arg-type]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    request = SearchRequest(query, now_micros())
    dense = _drive(conn, run_search(request, blind, dense=True))  # type: ignore[arg-type]
    collected = _drive(conn, run_search(request, blind))  # type: ignore[arg-type]
    assert [row[0] for row in dense.matches] == [row[0] for row in collected.matches]
    FOUND[params] = len(dense.matches)


FOUND: dict[str, int] = {}


def test_the_comparison_saw_matches() -> None:
    """Agreement on empty pages would prove nothing: most queries must find some."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"official examples not found at {EXAMPLES}")
    assert sum(1 for count in FOUND.values() if count) >= len(QUERIES) - 2, FOUND
