"""emploiplus.batching: what comes while a call is in flight leaves together, in order, each
caller with its own results or the batch's error."""

from __future__ import annotations

import asyncio

import pytest

from emploiplus.batching import LoopBatcher


def test_callers_that_come_during_a_call_leave_together_in_order_with_their_own_results():
    calls: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    async def scenario() -> list[list[int]]:
        batcher = LoopBatcher(run, most=5)
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0)  # the first call is in flight
        rest = [batcher.submit(items) for items in ([2, 3], [4], [5, 6], [7, 8, 9, 10, 11, 12], [13])]
        return [await first, *await asyncio.gather(*rest)]

    answers = asyncio.run(scenario())
    assert answers == [[10], [20, 30], [40], [50, 60], [70, 80, 90, 100, 110, 120], [130]]
    # At most 5 items a call, but a caller's items are never split (the 6 go alone).
    assert calls == [[1], [2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13]]


def test_every_caller_of_a_failed_call_gets_its_error_and_the_next_call_goes_on():
    async def run(items: list[str]) -> list[str]:
        await asyncio.sleep(0)
        if "bad" in items:
            raise ConnectionError("redis went away")
        return items

    async def scenario():
        batcher = LoopBatcher(run, most=10)
        first = asyncio.ensure_future(batcher.submit(["ok"]))
        await asyncio.sleep(0)
        together = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["bad"]), return_exceptions=True)
        return await first, together, await batcher.submit(["after"])

    first, together, after = asyncio.run(scenario())
    assert first == ["ok"] and after == ["after"]
    assert [type(e) for e in together] == [ConnectionError, ConnectionError]


def test_a_caller_that_stops_waiting_does_not_stop_the_others():
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return items

    async def scenario():
        batcher = LoopBatcher(run, most=10)
        gone = asyncio.ensure_future(batcher.submit([1]))
        stays = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays

    assert asyncio.run(scenario()) == [2]


def test_an_idle_batcher_runs_the_call_in_the_callers_task_and_batches_what_comes_meanwhile():
    calls: list[tuple[list[int], bool]] = []

    async def run(items: list[int]) -> list[int]:
        calls.append((items, asyncio.current_task() is caller["task"]))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    async def scenario():
        batcher = LoopBatcher(run, most=10, eager_after=0.05)
        caller["task"] = asyncio.current_task()
        first = await batcher.submit([1])  # idle since ever: in this task
        started = asyncio.ensure_future(batcher.submit([2]))  # idle for less than 0.05 s: a drain task
        await asyncio.sleep(0)
        later = [batcher.submit([3]), batcher.submit([4])]  # come while [2] is in flight
        return first, await started, await asyncio.gather(*later)

    caller: dict[str, asyncio.Task | None] = {"task": None}
    assert asyncio.run(scenario()) == ([10], [20], [[30], [40]])
    assert calls == [([1], True), ([2], False), ([3, 4], False)]


def test_what_comes_during_an_eager_call_leaves_together_once_it_has_returned():
    calls: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0.01)
        return items

    async def scenario():
        batcher = LoopBatcher(run, most=10, eager_after=0.0)
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0)  # the eager call is in flight, in `first`'s task
        rest = await asyncio.gather(batcher.submit([2]), batcher.submit([3]))
        return await first, rest

    assert asyncio.run(scenario()) == ([1], [[2], [3]])
    assert calls == [[1], [2, 3]]  # one call at a time (concurrency 1), in order


def test_a_cancelled_eager_caller_loses_its_own_call_not_the_others():
    started: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        started.append(items)
        await asyncio.sleep(0.01)
        return items

    async def scenario():
        batcher = LoopBatcher(run, most=10, eager_after=0.0)
        gone = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0)  # in flight in `gone`'s own task
        stays = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays, batcher.eager, batcher.tasks

    stays, eager, tasks = asyncio.run(scenario())
    assert stays == [2] and started == [[1], [2]]
    assert eager == 0 and not tasks
