"""One simulation from start to end: read the hospital, cast its people, register
their accounts, plan, run, log. What ``rempart simulate`` and ``rempart demo`` call."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.surveillance.simulator.accounts import register
from rempart.surveillance.simulator.actors import cast
from rempart.surveillance.simulator.http import Http
from rempart.surveillance.simulator.plan import plan, scenarios
from rempart.surveillance.simulator.runner import Bounds, LabelledLog, Sessions, Summary, run
from rempart.surveillance.simulator.world import load_world


@dataclass(frozen=True)
class Options:
    url: str
    """The server's origin, e.g. ``http://127.0.0.1:8080`` (loopback only)."""
    hospital: Path
    """A folder written by ``rempart synth`` (its ``roster/``)."""
    seed: int = 1
    bounds: Bounds = field(default_factory=Bounds)
    log: Path | None = None
    attacks: tuple[str, ...] = ()
    clinicians: int | None = None
    """At most this many clinicians act (all when None)."""


def check_loopback(url: str) -> str:
    """The origin of ``url`` when it is http(s) on a loopback address; refused otherwise:
    simulated traffic, with its test accounts, never leaves the machine."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise RempartError(Category.INCORRECT, "the simulator only talks to a loopback address")
    return f"{parts.scheme}://{parts.netloc}"


async def simulate(
    settings: Settings, options: Options, stop: asyncio.Event | None = None
) -> Summary:
    origin = check_loopback(options.url)
    world = load_world(options.hospital)
    people = cast(world, options.clinicians)
    try:
        chosen = scenarios(world, people, options.attacks)
    except KeyError as unknown:
        raise RempartError(Category.INCORRECT, f"unknown attack scenario {unknown}") from None
    keyring = await register(settings, people, world.reference)
    log = LabelledLog(options.log)
    http = Http(origin, log)
    try:
        actions = plan(world, chosen, options.seed)
        return await run(http, Sessions(http, keyring, log), actions, options.bounds, stop)
    finally:
        await http.close()
        log.close()
