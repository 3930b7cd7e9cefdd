"""One long-lived thread that runs a store's write transactions, fed by a queue.

``asyncio.to_thread`` per group commit went through the default executor: a
``concurrent.futures.Future`` chained to an asyncio one, a context copy, a pool
thread's wake-up and the loop's, about 14 µs of Python per request at 16 connections
(bench/results/audit.md). Here the loop puts a job on a :class:`queue.SimpleQueue`
(C code) and the thread resolves the job's future with one ``call_soon_threadsafe``.
Jobs run one at a time, in order, on the same thread: the connection's transactions
never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Job = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class WriterThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._pending = 0  # jobs run() and not yet settled; counted on the loop's thread
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """``work()`` on the writer thread; its result (or exception) in the future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending += 1
        self._jobs.put((work, future, loop))
        return future

    @property
    def idle(self) -> bool:
        """No job queued or running (as seen from the event loop)."""
        return self._pending == 0

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            work, future, loop = job
            try:
                outcome: tuple[bool, Any] = (True, work())
            except Exception as exc:  # noqa: BLE001 - raised to the caller, in its loop
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(self._settle, future, *outcome)

    def close(self) -> None:
        """Run the jobs already queued, then stop."""
        self._jobs.put(None)
        self._thread.join()

    def _settle(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        self._pending -= 1
        if future.done():  # the caller was cancelled; its transaction ran all the same
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
