"""A sliding window counter kept in this process's memory, written for speed: one
dict lookup and a few arithmetic operations per hit (the ``limits`` library's memory
storage, measured in ``bench/gateway.py``, cost about ten times more per request).

Per key: the count of the current fixed window and of the previous one; a hit is
allowed when ``previous * (share of the previous window still inside the sliding
window) + current + cost`` stays within the limit. The same estimate as the Redis
path (``limits``' sliding window counter), so both behave alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_KEYS = 200_000
"""Keys kept before idle ones are dropped (a flood of new addresses stays bounded)."""


class MemoryWindows:
    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self._window = window
        self._clock = clock
        self._counts: dict[str, list[float]] = {}  # key → [window index, current, previous]

    def hit(self, key: str, limit: int, cost: int) -> tuple[bool, int, int]:
        """(allowed, remaining units, seconds until the next window) for one hit."""
        now = self._clock()
        index = now // self._window
        entry = self._counts.get(key)
        if entry is None:
            entry = self._new(key, index)
        elif entry[0] != index:
            entry[2] = entry[1] if entry[0] == index - 1 else 0.0
            entry[0], entry[1] = index, 0.0
        overlap = 1.0 - (now % self._window) / self._window
        used = entry[2] * overlap + entry[1]
        reset = max(1, math.ceil(self._window - now % self._window))
        if used + cost > limit:
            return False, max(0, int(limit - used)), reset
        entry[1] += cost
        return True, max(0, int(limit - used - cost)), reset

    def _new(self, key: str, index: float) -> list[float]:
        if len(self._counts) >= MAX_KEYS:
            self._forget_idle(index)
        entry = [index, 0.0, 0.0]
        self._counts[key] = entry
        return entry

    def _forget_idle(self, index: float) -> None:
        """Drops keys idle for two windows; if none, the oldest half."""
        idle = [k for k, e in self._counts.items() if e[0] < index - 1]
        if not idle:
            idle = list(self._counts)[: len(self._counts) // 2]
        for key in idle:
            del self._counts[key]
