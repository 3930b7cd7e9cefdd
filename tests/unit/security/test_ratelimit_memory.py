"""The in-process sliding window counter (security/ratelimit/memory.py)."""

from __future__ import annotations

import pytest

from rempart.security.ratelimit import memory
from rempart.security.ratelimit.memory import MemoryWindows


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_budget_is_spent_then_refused_without_spending() -> None:
    clock = Clock(6000.0)  # the start of a window
    windows = MemoryWindows(60.0, clock)
    assert [windows.hit("a", 10, 3)[0] for _ in range(4)] == [True, True, True, False]
    allowed, remaining, reset = windows.hit("a", 10, 1)
    assert allowed and remaining == 0 and reset == 60
    assert windows.hit("a", 10, 1)[0] is False  # refused hits spent nothing: still 10
    assert windows.hit("b", 10, 10)[0] is True  # keys are independent


def test_the_previous_window_fades_linearly() -> None:
    clock = Clock(6000.0)
    windows = MemoryWindows(60.0, clock)
    assert windows.hit("k", 100, 100)[0]
    clock.now = 6060.0 + 15  # a quarter into the next window: 75 of the 100 still count
    assert windows.hit("k", 100, 25)[0]
    assert not windows.hit("k", 100, 1)[0]
    clock.now = 6060.0 + 45  # three quarters in: 25 + 25 count
    assert windows.hit("k", 100, 50)[0]
    assert not windows.hit("k", 100, 1)[0]
    clock.now = 6000.0 + 180  # two windows later: everything forgotten
    assert windows.hit("k", 100, 100)[0]


def test_keys_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "MAX_KEYS", 10)
    clock = Clock(0.0)
    windows = MemoryWindows(60.0, clock)
    for n in range(10):
        windows.hit(f"old{n}", 5, 1)
    clock.now = 300.0
    for n in range(25):
        windows.hit(f"new{n}", 5, 1)
    assert len(windows._counts) <= 10
