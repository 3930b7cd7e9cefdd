"""``rempart synth``: write a synthetic French establishment to files (NDJSON or
transaction Bundles) for ``rempart import`` (docs/synthetic-hospital.md)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from rempart.cli.progress import Progress
from rempart.config import Settings
from rempart.synth.generator import PRESETS, REFERENCE_DATE, Generator
from rempart.synth.output import write_bundles, write_ndjson


def add_parsers(commands: Any) -> None:
    synth = commands.add_parser("synth", help="generate a synthetic hospital as FHIR files")
    synth.add_argument("--size", choices=list(PRESETS), default="clinic")
    synth.add_argument("--patients", type=int, help="number of patients (overrides --size)")
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--format", choices=["ndjson", "bundles"], default="ndjson")
    synth.add_argument("--bundle-entries", type=int, default=500, metavar="N")
    synth.add_argument(
        "--reference-date",
        type=date.fromisoformat,
        default=REFERENCE_DATE,
        help=f"the generated world's today (default {REFERENCE_DATE})",
    )
    synth.add_argument("--out", type=Path, required=True, metavar="DIR")
    synth.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    patients = args.patients if args.patients is not None else PRESETS[args.size]
    if patients < 1 or args.bundle_entries < 1:
        print("rempart: --patients and --bundle-entries must be positive", file=sys.stderr)
        return 2
    generator = Generator(patients, args.seed, args.reference_date)
    progress = Progress("synth")
    if args.format == "ndjson":
        total = write_ndjson(generator, args.out, progress.advance)
    else:
        total = write_bundles(generator, args.out, progress.advance, args.bundle_entries)
    seconds = progress.finish()
    print(f"{total} resources, {patients} patients in {args.out} ({total / seconds:,.0f}/s)")
    return 0
