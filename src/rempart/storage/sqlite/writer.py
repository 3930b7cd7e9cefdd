"""The single SQLite writer: a thread that commits queued writes in groups.

SQLite allows one writer at a time. Rather than contend for the lock from many
coroutines, every write goes to one thread which takes all that is waiting
(up to a bound), applies each inside its own SAVEPOINT, and commits them with a
single fsync. A write is acknowledged only after its group committed, so an
acknowledged write survives a crash (``synchronous=FULL``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rempart.errors import Category, RempartError

Job = Callable[[sqlite3.Connection], Any]
log = logging.getLogger("rempart.storage")
_STOP = object()


class GroupCommitWriter:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], max_group: int, lock_path: Path
    ) -> None:
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._connect = connect
        self._max_group = max_group
        self._thread = threading.Thread(target=self._run, name="rempart-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((job, future))
        return future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        os.close(self._lock_fd)

    def _run(self) -> None:
        conn = self._connect()
        try:
            while (group := self._next_group()) is not None:
                self._commit_group(conn, group)
        finally:
            conn.close()

    def _next_group(self) -> list[tuple[Job, Future[Any]]] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        group = [first]
        while len(group) < self._max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            group.append(item)
        return group

    def _commit_group(self, conn: sqlite3.Connection, group: list[tuple[Job, Future[Any]]]) -> None:
        # A write whose caller gave up (cancelled) before it started is not applied;
        # once running, a future can no longer be cancelled, so results always land.
        group = [(job, future) for job, future in group if future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            outcomes = self._run_group(conn, group)
        except Exception:  # the thread must survive anything: it is every write's only path
            log.exception("SQLite write group failed")
            _rollback(conn)
            outcomes = [(False, RempartError(Category.FAULT, "Internal error"))] * len(group)
        for (_, future), (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _run_group(
        self, conn: sqlite3.Connection, group: list[tuple[Job, Future[Any]]]
    ) -> list[tuple[bool, Any]]:
        # Several server processes (--workers) each have a writer: a blocking file lock
        # queues them, where SQLite's own busy handler would sleep and retry with backoff.
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_apply(conn, job) for job, _ in group]
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)
            failure = RempartError(Category.UNAVAILABLE, "The database is unavailable")
            return [(False, failure)] * len(group)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return outcomes


def _apply(conn: sqlite3.Connection, job: Job) -> tuple[bool, Any]:
    """One write inside its own SAVEPOINT: its failure undoes it alone."""
    conn.execute("SAVEPOINT w")
    try:
        result = job(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO w")
        conn.execute("RELEASE w")
        if not isinstance(exc, RempartError):
            log.error("SQLite write failed", exc_info=exc)
            exc = RempartError(Category.FAULT, "Internal error")
        return False, exc
    conn.execute("RELEASE w")
    return True, result


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        return
