"""``rempart simulate``: the people of a synthetic hospital using a running server
through real tokens over loopback, with a labelled log (docs/simulator.md).

Accounts and clients are registered in the store named by ``--data-dir``/``--database``
(the server's), so the command runs beside the server, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rempart.config import Settings
from rempart.surveillance.simulator.attacks import ATTACKS
from rempart.surveillance.simulator.runner import Bounds
from rempart.surveillance.simulator.simulation import Options, simulate


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "simulate", parents=[common], help="simulated hospital traffic, labelled (loopback)"
    )
    command.add_argument("--url", default="http://127.0.0.1:8080", help="server origin")
    command.add_argument("--hospital", type=Path, required=True, help="folder from rempart synth")
    command.add_argument("--seed", type=int, default=1)
    command.add_argument("--duration", type=float, default=60.0, help="real seconds at most")
    command.add_argument("--requests", type=int, help="actions at most")
    command.add_argument("--concurrency", type=int, default=4)
    command.add_argument("--rate", type=float, help="actions per second (default: flat out)")
    command.add_argument("--clinicians", type=int, help="at most this many clinicians act")
    command.add_argument("--log", type=Path, help="labelled log (NDJSON), appended to")
    command.add_argument(
        "--attack", action="append", default=[], choices=sorted(ATTACKS), help="repeatable"
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    bounds = Bounds(args.duration, args.requests, args.concurrency, args.rate)
    options = Options(
        args.url, args.hospital, args.seed, bounds, args.log, tuple(args.attack), args.clinicians
    )
    summary = asyncio.run(simulate(settings, options))
    print(
        json.dumps(
            {
                "actions": summary.actions,
                "logins": summary.logins,
                "refused_logins": summary.refused_logins,
                "statuses": {str(k): v for k, v in sorted(summary.statuses.items())},
                "labels": dict(summary.labels),
            },
            indent=2,
        )
    )
    return 0
