"""The demo's background traffic: the simulator in a thread of its own (its own event
loop), started once the server answers, stopped when the server stops."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import httpx

from rempart.config import Settings
from rempart.errors import RempartError
from rempart.surveillance.simulator.runner import Bounds
from rempart.surveillance.simulator.simulation import Options, simulate

CLINICIANS = 6
"""Clinicians who take part in the background traffic (a few logins, not forty)."""


class Traffic(threading.Thread):
    def __init__(
        self, settings: Settings, origin: str, hospital: Path, rate: float, started: float
    ) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.settings, self.origin, self.hospital = settings, origin, hospital
        self.rate, self.started = rate, started
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.join(10)

    async def _main(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        if not await self._ready():
            return
        seconds = time.monotonic() - self.started
        print(
            f"Ready in {seconds:.1f} s at {self.origin}/fhir; simulated traffic started.",
            flush=True,
        )
        bounds = Bounds(duration=None, requests=None, concurrency=1, rate=self.rate)
        log = self.settings.storage.data_dir / "demo" / "traffic.ndjson"
        options = Options(self.origin, self.hospital, 1, bounds, log, (), CLINICIANS)
        try:
            await simulate(self.settings, options, self.stopping)
        except (RempartError, OSError, httpx.HTTPError) as error:
            print(f"rempart: simulated traffic stopped: {error}", file=sys.stderr)

    async def _ready(self) -> bool:
        assert self.stopping is not None
        async with httpx.AsyncClient(timeout=1) as client:
            while not self.stopping.is_set():
                try:
                    if (await client.get(f"{self.origin}/healthz")).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        return False
