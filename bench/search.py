"""Rempart's search benchmark: bulk import by transaction, then typical FHIR searches.

One command (see bench/README.md)::

    .venv/bin/python bench/search.py [--sizes 10000 100000] [--backends sqlite,postgres]
        [--duration 10] [--quick]

For each backend and size: a fresh store and server, the synthetic hospital of
``clinical_data.py`` POSTed as transaction Bundles to ``/fhir`` by 4 concurrent
clients (resources/s end to end), then each search checked once (HTTP 200, a Bundle
with entries) and measured with ``wrk -t1 -c8``. Then, per backend, Medplum's own
search benchmark: ``Patient?family=Smith&_count=20`` over 1,000 Patients, 50 of them
Smiths, with ``wrk -t1 -c32``. A search that fails its check is reported, not timed.
Results go to bench/results/search.{json,md}.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

import clinical_data
import cpu
import loadgen
import report
import servers
from run import DEFAULT_PG, ensure_wrk

RESULTS = Path(__file__).resolve().parent / "results"
IMPORT_CLIENTS = 4
CONNECTIONS = 8
MEDPLUM_CONNECTIONS = 32
STOP_AFTER_FAILED_BUNDLES = 3
IDS_PER_SEARCH = 100
BUSY_WARNING_PCT = 10.0
MEDPLUM = "Medplum on this machine kind, wrk -t1 -c32: 782 req/s, p99 64 ms"
HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}


def _token(code: str) -> str:
    return quote(f"{clinical_data.LOINC}|{code}", safe=":/")


HEART_RATE, HEMOGLOBIN, GLUCOSE = _token("8867-4"), _token("718-7"), _token("2339-0")


@dataclass(frozen=True)
class Search:
    """One search; a ``query`` with ``{id}`` is asked for each of ``patient_ids`` in turn."""

    name: str
    query: str
    patient_ids: list[str]
    connections: int = CONNECTIONS

    @property
    def paths(self) -> list[str]:
        if "{id}" not in self.query:
            return [self.query]
        return [self.query.replace("{id}", id_) for id_ in self.patient_ids]


Searches = list[Search]


@dataclass(frozen=True)
class Dataset:
    """One measured data set: its backend, its bundles, and the searches over it."""

    backend: str
    name: str
    bundles: Callable[[], Iterator[dict[str, Any]]]
    searches: Callable[[list[str]], Searches]

    @property
    def tag(self) -> dict[str, str]:
        return {"backend": self.backend, "dataset": self.name}


@dataclass
class Imported:
    """What one import did; ``patient_ids`` are the server's ids, in import order."""

    resources: int = 0
    bundles: int = 0
    seconds: float = 0.0
    client_seconds: float = 0.0
    failed_bundles: int = 0
    first_error: str | None = None
    patient_ids: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "resources": self.resources,
            "bundles": self.bundles,
            "seconds": round(self.seconds, 2),
            "resources_per_s": round(self.resources / self.seconds, 1) if self.seconds else 0.0,
            "client_generation_seconds": round(self.client_seconds, 2),
            "failed_bundles": self.failed_bundles,
            "first_error": self.first_error,
        }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.sizes, args.duration, args.warmup = [1000], 3, 1
        args.wait_quiet = min(args.wait_quiet, 5)
    ensure_wrk()
    started, clock = datetime.now(UTC), time.monotonic()
    doc: dict[str, Any] = {"results": [], "imports": [], "failures": []}
    for backend in args.backends:
        for size in args.sizes:
            data = functools.partial(clinical_data.generate, size, args.seed)
            _run_guarded(
                doc, Dataset(backend, f"{size:,} resources", data, hospital_searches), args
            )
        data = functools.partial(clinical_data.smith_patients, 1000, 50, args.seed)
        _run_guarded(
            doc, Dataset(backend, "1,000 Patients (50 Smith)", data, medplum_searches), args
        )
    doc = _document(args, started, time.monotonic() - clock, doc)
    json_path, md_path = _write(doc, args.out)
    print(markdown(doc))
    print(f"Wrote {json_path} and {md_path}")
    failed = doc["failures"] or any(r["error"] for r in doc["results"])
    return 1 if failed or any(i["first_error"] for i in doc["imports"]) else 0


def _run_guarded(doc: dict[str, Any], dataset: Dataset, args: argparse.Namespace) -> None:
    print(f"== {dataset.backend}, {dataset.name}", flush=True)
    try:
        run_dataset(doc, dataset, args)
    except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        print(f"!! {dataset.backend} {dataset.name} failed: {exc}", file=sys.stderr)
        doc["failures"].append({**dataset.tag, "error": str(exc)[:500]})


def run_dataset(doc: dict[str, Any], dataset: Dataset, args: argparse.Namespace) -> None:
    """Fresh store and server, import the data, check and measure each search."""
    storage = servers.fresh_storage(dataset.backend, args.database)
    server = None
    try:
        server = servers.start_rempart(storage, args.workers)
        imported = import_bundles(server.port, dataset.bundles(), server.headers)
        doc["imports"].append({**dataset.tag, **imported.row()})
        print(f"   import: {_import_line(doc['imports'][-1])}", flush=True)
        busy = cpu.wait_quiet(BUSY_WARNING_PCT, args.wait_quiet)
        for search in dataset.searches(imported.patient_ids):
            load = loadgen.Load(search.connections, args.duration, args.warmup)
            row = {
                **dataset.tag,
                "search": search.name,
                "query": search.query,
                "connections": search.connections,
                "background_cpu_pct": busy,
            }
            doc["results"].append(_search_row(server, storage.data_dir, row, search.paths, load))
    except (RuntimeError, OSError) as exc:
        if server is not None:
            print(f"-- rempart log:\n{server.log_tail()}", file=sys.stderr)
        raise RuntimeError(str(exc)) from exc
    finally:
        if server is not None:
            server.stop()
        storage.drop()


# --- import -----------------------------------------------------------------------------


def import_bundles(
    port: int, bundles: Iterator[dict[str, Any]], headers: dict[str, str] | None = None
) -> Imported:
    """POST every bundle to ``/fhir``; the first (shared resources) alone, then concurrently.
    ``headers``: the server's own (its bearer token), on every request."""
    result, lock, stop = Imported(), threading.Lock(), threading.Event()
    client_args: dict[str, Any] = {
        "base_url": f"http://{servers.HOST}:{port}",
        "timeout": 600,
        "headers": headers or {},
    }
    started = time.perf_counter()

    def next_body() -> tuple[bytes, list[bool]] | None:
        with lock:
            if stop.is_set():
                return None
            clock = time.perf_counter()
            bundle = next(bundles, None)
            body = orjson.dumps(bundle) if bundle else b""
            result.client_seconds += time.perf_counter() - clock
        if bundle is None:
            return None
        return body, [e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]]

    def worker() -> None:
        with httpx.Client(**client_args) as client:
            while (item := next_body()) is not None:
                _post_bundle(client, *item, result, lock, stop)

    with httpx.Client(**client_args) as client:
        first = next_body()  # the shared Organization and Practitioners, before the rest
        if first is not None:
            _post_bundle(client, *first, result, lock, stop)
    with ThreadPoolExecutor(IMPORT_CLIENTS) as pool:
        for future in [pool.submit(worker) for _ in range(IMPORT_CLIENTS)]:
            future.result()
    result.seconds = time.perf_counter() - started
    return result


def _post_bundle(
    client: httpx.Client,
    body: bytes,
    is_patient: list[bool],
    result: Imported,
    lock: threading.Lock,
    stop: threading.Event,
) -> None:
    response = client.post("/fhir", content=body, headers=HEADERS)
    ids, error = _patient_ids(response, is_patient)
    with lock:
        if error is None:
            result.resources += len(is_patient)
            result.bundles += 1
            result.patient_ids += ids
            return
        result.failed_bundles += 1
        result.first_error = result.first_error or error
        # Give up early: without transactions (or the shared first bundle) nothing can pass.
        if result.failed_bundles >= STOP_AFTER_FAILED_BUNDLES or result.bundles == 0:
            stop.set()


def _patient_ids(response: httpx.Response, is_patient: list[bool]) -> tuple[list[str], str | None]:
    if response.status_code != 200:
        return [], _describe(response)
    try:
        entries = orjson.loads(response.content).get("entry", [])
    except (orjson.JSONDecodeError, AttributeError):
        return [], f"not a JSON Bundle: {response.text[:300]!r}"
    if len(entries) != len(is_patient):
        return [], f"{len(entries)} response entries for {len(is_patient)} requests"
    ids = []
    for entry, patient in zip(entries, is_patient, strict=True):
        status = str(entry.get("response", {}).get("status", ""))
        if not status.startswith("201"):
            return [], f"an entry answered {status!r}: {str(entry)[:300]!r}"
        if patient:
            ids.append(_id_from_location(entry["response"].get("location", "")))
    return ids, None


def _id_from_location(location: str) -> str:
    """``[base/]Patient/123/_history/1`` → ``123``."""
    parts = location.split("/")
    return parts[parts.index("Patient") + 1] if "Patient" in parts[:-1] else ""


# --- searches ---------------------------------------------------------------------------


def hospital_searches(patient_ids: list[str]) -> Searches:
    """The typical searches; ``{id}`` stands for Patient ids spread over the data set."""
    ids = [i for i in patient_ids if i][:: max(1, len(patient_ids) // IDS_PER_SEARCH)]
    family = clinical_data.COMMON_FAMILY
    queries = [
        ("string", f"Patient?family={family}"),
        ("token", f"Observation?code={HEART_RATE}&_count=20"),
        ("date range", "Observation?date=ge2024-01-01&date=lt2024-02-01"),
        ("reference+token", "Observation?subject=Patient/{id}&code=" + HEART_RATE),
        ("chain", f"Observation?subject:Patient.family={family}"),
        ("_include", f"Observation?code={HEMOGLOBIN}&_include=Observation:subject"),
        ("_revinclude", "Patient?_id={id}&_revinclude=Observation:subject"),
        ("_has", f"Patient?_has:Observation:subject:code={GLUCOSE}&_count=20"),
        ("$everything", "Patient/{id}/$everything"),
    ]
    return [Search(name, "/fhir/" + query, ids) for name, query in queries]


def medplum_searches(_: list[str]) -> Searches:
    return [
        Search(
            "Medplum: family=Smith", "/fhir/Patient?family=Smith&_count=20", [], MEDPLUM_CONNECTIONS
        )
    ]


def _search_row(
    server: servers.Server,
    workdir: Path,
    row: dict[str, Any],
    paths: list[str],
    load: loadgen.Load,
) -> dict[str, Any]:
    error, total = check(server.port, paths, server.headers)
    if error is None:
        data = workdir / f"search-{''.join(c for c in row['search'] if c.isalnum())}.txt"
        data.write_text("\n".join(paths) + "\n", encoding="utf-8")
        lua = loadgen.script("read", workdir)
        url = f"http://{servers.HOST}:{server.port}"
        measured = loadgen.measure(url, lua, data, load, server.process.pid, server.headers)
        row.update(total=total, **measured)
        server.check_alive()
    row["error"] = error
    print(f"   {_result_line(row)}", flush=True)
    return row


def check(
    port: int, paths: list[str], headers: dict[str, str] | None = None
) -> tuple[str | None, int | None]:
    """(error, Bundle.total or entry count) of one GET of the first path."""
    if not paths:
        return "no Patient ids from the import", None
    url = f"http://{servers.HOST}:{port}{paths[0]}"
    try:
        response = httpx.get(url, headers={**HEADERS, **(headers or {})}, timeout=60)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}", None
    if response.status_code != 200:
        return _describe(response), None
    try:
        bundle = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return f"not JSON: {response.text[:200]!r}", None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return f"not a Bundle: {response.text[:200]!r}", None
    if not bundle.get("entry"):
        return f"an empty Bundle (total {bundle.get('total')})", None
    return None, bundle.get("total", len(bundle["entry"]))


def _describe(response: httpx.Response) -> str:
    """``HTTP 405 not-supported: <diagnostics>`` from an OperationOutcome, else the text."""
    try:
        issue = orjson.loads(response.content)["issue"][0]
        detail = f"{issue.get('code')}: {issue.get('diagnostics', '')}"
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        detail = repr(response.text[:200])
    return f"HTTP {response.status_code} {detail}"[:300]


# --- results ----------------------------------------------------------------------------


def _document(
    args: argparse.Namespace, started: datetime, elapsed: float, doc: dict[str, Any]
) -> dict[str, Any]:
    settings = {
        "command": " ".join(["python", *sys.argv]),
        "sizes": args.sizes,
        "backends": args.backends,
        "duration": args.duration,
        "warmup": args.warmup,
        "workers": args.workers,
        "seed": args.seed,
        "import_clients": IMPORT_CLIENTS,
        "bundle_entries": clinical_data.BUNDLE_ENTRIES,
        "wrk_threads": 1,
    }
    pg_url = args.database if "postgres" in args.backends else None
    return {
        "date": started.isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 1),
        "environment": report.environment(pg_url),
        "settings": settings,
        "reference": MEDPLUM,
        **doc,
    }


def _write(doc: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "search.json", out_dir / "search.md"
    json_path.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    md_path.write_text(markdown(doc))
    return json_path, md_path


def markdown(doc: dict[str, Any]) -> str:
    env, settings = doc["environment"], doc["settings"]
    machine = env["machine"]
    dirty = " (work tree has uncommitted changes)" if env["worktree_dirty"] else ""
    lines = [
        "# Rempart search benchmark",
        "",
        f"- Date: {doc['date']}; {doc['elapsed_seconds']} s in all",
        f"- Machine: {machine['nproc']} cores, {machine['cpu_model']}, Python {machine['python']}",
        f"- Commit: `{env['commit']}`{dirty}; {env['wrk']}; PostgreSQL: "
        f"{env['postgresql'] or 'n/a'}",
        f"- Settings: {settings['workers']} worker(s); import by {IMPORT_CLIENTS} concurrent "
        f"clients, transaction Bundles of about {settings['bundle_entries']} entries; "
        f"searches with wrk -t1, {settings['duration']} s after {settings['warmup']} s warm-up",
        f"- Command: `{settings['command']}`",
        "",
        "## Import (POST /fhir, transaction Bundles)",
        "",
        "| backend | data set | resources | bundles | seconds | resources/s "
        "| client generation s | failed bundles |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *[_import_cells(i) for i in doc["imports"]],
        "",
        "## Searches",
        "",
        "| backend | data set | search | conn. | req/s | p50 ms | p95 ms | p99 ms "
        "| errors (status / socket) | matches | server CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[_result_cells(r) for r in doc["results"]],
        "",
        f"Reference: {doc['reference']}.",
        "",
        "Matches: Bundle.total (or the first page's entry count) of the checked request. "
        "Server CPU in % of one core. Queries:",
        "",
        *dict.fromkeys(f"- {r['search']}: `{r['query']}`" for r in doc["results"]),
        "",
    ]
    lines += [
        f"- FAILED import {i['backend']} {i['dataset']}: {i['first_error']}"
        for i in doc["imports"]
        if i["first_error"]
    ]
    lines += [f"- FAILED {f['backend']} {f['dataset']}: {f['error']}" for f in doc["failures"]]
    return "\n".join(lines) + "\n"


def _import_cells(i: dict[str, Any]) -> str:
    return (
        f"| {i['backend']} | {i['dataset']} | {i['resources']:,} | {i['bundles']:,} "
        f"| {i['seconds']:.1f} | {i['resources_per_s']:,.0f} "
        f"| {i['client_generation_seconds']:.1f} | {i['failed_bundles']} |"
    )


def _result_cells(r: dict[str, Any]) -> str:
    head = f"| {r['backend']} | {r['dataset']} | {r['search']} | {r['connections']} "
    if r["error"]:
        return head + f"| FAILED: {_cell(r['error'])} |" + " |" * 6
    return head + (
        f"| {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} "
        f"| {r['errors_status']} / {r['errors_socket']} | {r['total']} "
        f"| {r['server_cpu_pct_of_one_core']:.0f}% |"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:120]


def _import_line(i: dict[str, Any]) -> str:
    failed = f", {i['failed_bundles']} failed: {i['first_error']}" if i["failed_bundles"] else ""
    return (
        f"{i['resources']:,} resources in {i['seconds']:.1f} s, "
        f"{i['resources_per_s']:,.0f}/s{failed}"
    )


def _result_line(r: dict[str, Any]) -> str:
    if r["error"]:
        return f"{r['search']:20} FAILED: {r['error'][:200]}"
    return (
        f"{r['search']:20} {r['rps']:>8,.0f} req/s  p50 {r['p50_ms']:.2f}  p95 "
        f"{r['p95_ms']:.2f}  p99 {r['p99_ms']:.2f} ms  errors "
        f"{r['errors_status']}/{r['errors_socket']}  matches {r['total']}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="resource counts, e.g. 10000 100000 1000000 (default 10000 100000)",
    )
    parser.add_argument(
        "--backends",
        type=lambda t: [b for b in t.split(",") if b],
        default=["sqlite", "postgres"],
        help="comma-separated: sqlite,postgres",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per search")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per search")
    parser.add_argument(
        "--quick", action="store_true", help="smoke check: 1,000 resources, 3 s runs"
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--seed", type=int, default=1, help="data generator seed")
    parser.add_argument(
        "--database", default=DEFAULT_PG, help="PostgreSQL URL (a fresh schema is used)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30,
        help="seconds to wait for other work to leave the CPU before searches",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return parser


if __name__ == "__main__":
    sys.exit(main())
