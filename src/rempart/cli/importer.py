"""``rempart import FILE…``: load NDJSON files and batch/transaction Bundles into the
store named by ``--data-dir``/``--database``, with a progress bar, resumable.

Exit status: 0 when everything was loaded, 1 when some lines or entries were rejected
(each reported as ``file:line: why``), 2 for a usage error, 130 when interrupted (run
the same command again to resume). See docs/synthetic-hospital.md#import.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rempart.cli.progress import Progress
from rempart.config import Settings
from rempart.fhir.validation import FhirkitValidator
from rempart.importing.journal import Journal
from rempart.importing.loader import Loader
from rempart.rest.context import Context
from rempart.rest.paging import CursorSigner
from rempart.storage.open import open_store

MAX_SHOWN = 100


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "import", parents=[common], help="load NDJSON or Bundle files (resumable)"
    )
    command.add_argument("files", nargs="+", type=Path, metavar="FILE")
    command.add_argument("--batch", type=int, default=500, help="resources per transaction")
    command.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing or args.batch < 1:
        problem = f"no such file: {', '.join(missing)}" if missing else "--batch must be positive"
        print(f"rempart: {problem}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(load(settings, args.files, args.batch))
    except KeyboardInterrupt:
        print("\nrempart: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


async def load(settings: Settings, files: list[Path], batch: int) -> int:
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = await open_store(settings)
    ctx = Context(store, FhirkitValidator(), settings.limits, CursorSigner(b"import"))
    journal = Journal(settings.storage.data_dir / "import-progress.json", _store_name(settings))
    progress = Progress("import", sum(f.stat().st_size for f in files))
    loader = Loader(ctx, journal, _reporter(progress), progress.advance, batch)
    loaded = rejected = 0
    try:
        for path in files:
            state = await loader.load(path)
            loaded, rejected = loaded + state.loaded, rejected + state.rejected
    finally:
        await store.close()
    seconds = progress.finish()
    print(f"loaded {loaded} resources, rejected {rejected} ({progress.done / seconds:,.0f}/s)")
    return 1 if rejected else 0


def _reporter(progress: Progress) -> Any:
    """Prints the first rejections; a file of bad lines must not flood the terminal."""
    shown = 0

    def report(where: str, why: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= MAX_SHOWN:
            progress.clear()
            print(f"{where}: {why}", file=sys.stderr)
        if shown == MAX_SHOWN:
            print("rempart: further rejections are counted, not shown", file=sys.stderr)

    return report


def _store_name(settings: Settings) -> str:
    return f"{settings.storage.url}#{settings.storage.postgres_schema}"
