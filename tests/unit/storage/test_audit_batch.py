"""Group commit of audit appends (storage/audit_batch.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from rempart.errors import Category, RempartError
from rempart.storage.audit_batch import GroupCommit


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.groups: list[list[Mapping[str, Any]]] = []
        self.fail = fail

    async def write(self, events: list[Mapping[str, Any]]) -> list[int]:
        await asyncio.sleep(0.01)  # a commit takes time: callers queue meanwhile
        if self.fail:
            raise RempartError(Category.UNAVAILABLE, "The audit store is unavailable")
        start = sum(len(group) for group in self.groups) + 1
        self.groups.append(events)
        return list(range(start, start + len(events)))


def test_appends_waiting_during_a_commit_share_the_next_one() -> None:
    async def scenario() -> tuple[list[list[int]], Recorder]:
        recorder = Recorder()
        group = GroupCommit(recorder.write)
        calls = [group.append([{"c": c, "n": n} for n in range(2)]) for c in range(10)]
        return list(await asyncio.gather(*calls)), recorder

    results, recorder = asyncio.run(scenario())
    assert results == [[2 * c + 1, 2 * c + 2] for c in range(10)]
    assert len(recorder.groups) < 10  # first alone, the rest gathered
    assert [event["c"] for group in recorder.groups for event in group][::2] == list(range(10))


def test_a_failed_commit_fails_every_caller_of_its_group() -> None:
    async def scenario() -> list[BaseException | list[int]]:
        group = GroupCommit(Recorder(fail=True).write)
        calls = [group.append([{"n": n}]) for n in range(3)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    results = asyncio.run(scenario())
    assert all(isinstance(r, RempartError) for r in results)


def test_nothing_to_append_writes_nothing() -> None:
    recorder = Recorder()
    assert asyncio.run(GroupCommit(recorder.write).append([])) == []
    assert recorder.groups == []


@pytest.mark.parametrize("callers", [1, 5])
def test_close_waits_for_accepted_appends(callers: int) -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        group = GroupCommit(recorder.write)
        tasks = [asyncio.create_task(group.append([{"n": n}])) for n in range(callers)]
        await asyncio.sleep(0)
        await group.close()
        assert all(task.done() for task in tasks)
        return recorder

    assert sum(len(g) for g in asyncio.run(scenario()).groups) == callers
