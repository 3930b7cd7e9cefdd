"""Running a plan: tokens per actor (one login per simulated shift, renewed by refresh
token when they expire), bounded concurrency, an optional steady rate, bounds in real
time and in number of actions, and the labelled log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from rempart.surveillance.simulator.accounts import Keyring
from rempart.surveillance.simulator.http import Http, LoginRefused, Session, Stamp
from rempart.surveillance.simulator.scenarios import Action


@dataclass(frozen=True)
class Bounds:
    duration: float | None = 60.0
    """Real seconds; None for no limit."""
    requests: int | None = None
    """Actions of the plan (login requests come on top); None for no limit."""
    concurrency: int = 4
    rate: float | None = None
    """Actions per second; None for as fast as the concurrency allows."""


@dataclass
class Summary:
    actions: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    logins: int = 0
    refused_logins: int = 0


class LabelledLog:
    """The NDJSON log: one line per request (docs/simulator.md#the-labelled-log)."""

    def __init__(self, path: Path | None) -> None:
        self.out: IO[bytes] | None = open(path, "ab") if path else None  # noqa: SIM115
        self.summary = Summary()

    def __call__(
        self, stamp: Stamp, method: str, path: str, status: int, request_id: str, ms: float
    ) -> None:
        self.summary.statuses[status] += 1
        if self.out is None:
            return
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "sim_time": stamp.moment.isoformat(),
            "actor": stamp.actor.name,
            "role": stamp.actor.role,
            "scenario": stamp.scenario,
            "label": stamp.label,
            "method": method,
            "path": path,
            "status": status,
            "request_id": request_id,
            "patient": stamp.patient,
            "ms": round(ms, 2),
        }
        self.out.write(orjson.dumps(line) + b"\n")
        self.out.flush()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


class Sessions:
    """One token per actor. ``per_shift``: a new simulated shift means a new login
    (the load harness turns it off: it logs in once)."""

    def __init__(self, http: Http, keyring: Keyring, log: LabelledLog, per_shift: bool = True):
        self.http, self.keyring, self.log, self.per_shift = http, keyring, log, per_shift
        self.sessions: dict[str, Session] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def token(self, action: Action) -> str:
        actor = action.actor
        async with self.locks.setdefault(actor.name, asyncio.Lock()):
            shift = actor.shift_start(action.moment) if self.per_shift else None
            known = self.sessions.get(actor.name)
            if known is not None and known.shift == shift and known.fresh():
                return known.access_token
            stamp = Stamp(actor, "login", action.label, action.moment)
            session = await self._renew(stamp, known if known and known.shift == shift else None)
            session.shift = shift
            self.sessions[actor.name] = session
            return session.access_token

    async def _renew(self, stamp: Stamp, same_shift: Session | None) -> Session:
        actor = stamp.actor
        scope = self.keyring.scopes(actor)
        if actor.backend:
            return await self.http.backend_token(
                stamp, self.keyring.lab_key, self.keyring.lab_kid, scope
            )
        if same_shift is not None and same_shift.refresh_token:
            try:
                return await self.http.refresh(stamp, same_shift)
            except LoginRefused:
                pass  # rotated away or expired: log in again
        self.log.summary.logins += 1
        return await self.http.login(stamp, self.keyring.users[actor.name], scope)


async def run(
    http: Http,
    sessions: Sessions,
    actions: Iterator[Action],
    bounds: Bounds,
    stop: asyncio.Event | None = None,
) -> Summary:
    """Executes ``actions`` until a bound is reached or ``stop`` is set."""
    summary = sessions.log.summary
    started = time.monotonic()
    claimed = 0

    def next_action() -> tuple[int, Action] | None:
        nonlocal claimed
        if stop is not None and stop.is_set():
            return None
        if bounds.requests is not None and claimed >= bounds.requests:
            return None
        if bounds.duration is not None and time.monotonic() - started >= bounds.duration:
            return None
        claimed += 1
        return claimed, next(actions)

    async def worker() -> None:
        while (item := next_action()) is not None:
            number, action = item
            if bounds.rate:
                await _until(started + (number - 1) / bounds.rate, stop)
            await _perform(http, sessions, action, summary)

    await asyncio.gather(*(worker() for _ in range(max(1, bounds.concurrency))))
    return summary


async def _perform(http: Http, sessions: Sessions, action: Action, summary: Summary) -> None:
    try:
        token = await sessions.token(action)
    except LoginRefused:
        summary.refused_logins += 1
        return
    stamp = Stamp(action.actor, action.scenario, action.label, action.moment, action.patient)
    await http.request(stamp, action.method, action.path, token, action.body)
    summary.actions += 1
    summary.labels[action.label] += 1


async def _until(moment: float, stop: asyncio.Event | None) -> None:
    delay = moment - time.monotonic()
    if delay <= 0:
        return
    if stop is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
