"""A one-line progress display on stderr for long commands (synth, import).

Hand-written rather than a dependency: a count of resources and their rate and, when
the total work is known (bytes of the files to import), a bar and a percentage. It is
redrawn at most five times a second, so drawing never costs more than the work.
"""

from __future__ import annotations

import sys
import time

WIDTH = 30
INTERVAL = 0.2


class Progress:
    def __init__(self, label: str, total: int = 0) -> None:
        self.label, self.total = label, total
        self.done = self.share = 0
        self.started = self.drawn = time.monotonic()

    def advance(self, count: int, share: int = 0) -> None:
        """``count`` more resources, covering ``share`` more of the total."""
        self.done += count
        self.share += share
        now = time.monotonic()
        if now - self.drawn >= INTERVAL:
            self.drawn = now
            self._draw(now)

    def clear(self) -> None:
        """Blanks the line so that a message can be printed in its place."""
        sys.stderr.write("\r\033[K")

    def finish(self) -> float:
        """Draws the final line; returns the elapsed seconds."""
        now = time.monotonic()
        self._draw(now)
        sys.stderr.write("\n")
        sys.stderr.flush()
        return max(now - self.started, 1e-9)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        line = f"{self.label} {self.done:,} resources ({rate:,.0f}/s)"
        if self.total:
            part = min(self.share / self.total, 1.0)
            line = (
                f"{self.label} [{'#' * int(part * WIDTH):<{WIDTH}}] {part:4.0%} "
                + line[len(self.label) + 1 :]
            )
        sys.stderr.write(f"\r{line}")
        sys.stderr.flush()
