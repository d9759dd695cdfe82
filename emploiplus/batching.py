"""Calls of one event loop that come together leave together.

A busy server runs many consumers on one loop; each one's Redis call is a round trip, a
syscall each way and a wake-up of Redis. `LoopBatcher` lets those that arrive while a call is
in flight wait and go in the next one, together (nothing waits when the server is idle: the
first call leaves at once):

    batcher = for_loop(_registry, lambda: LoopBatcher(send_many, most=500))
    results = await batcher.submit(items)   # send_many(all waiting items) → one result each

Order is kept: a batch leaves after the one before it has returned. Each caller gets the
results of its own items, or the batch's error.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class LoopBatcher(Generic[Item, Result]):
    """`run(items)` returns one result per item, in order; `most` caps a batch (a caller's
    items are never split: one larger than `most` leaves alone). With `concurrency` > 1, up to
    that many calls are in flight at once (then batches may finish out of order)."""

    def __init__(
        self, run: Callable[[list[Item]], Awaitable[list[Result]]], *, most: int, concurrency: int = 1
    ) -> None:
        self.run = run
        self.most = most
        self.concurrency = concurrency
        self.waiting: list[tuple[list[Item], asyncio.Future]] = []
        self.tasks: set[asyncio.Task] = set()  # held: the loop keeps only a weak reference

    async def submit(self, items: list[Item]) -> list[Result]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append((items, done))
        if len(self.tasks) < self.concurrency:
            self.tasks.add(loop.create_task(self._drain()))
        return await done

    async def _drain(self) -> None:
        try:
            await self._drain_waiting()
        finally:  # in the step that found nothing waiting: a later submit starts a new drain
            self.tasks.discard(asyncio.current_task())

    async def _drain_waiting(self) -> None:
        while self.waiting:
            batch, size = [], 0
            while self.waiting and (not batch or size + len(self.waiting[0][0]) <= self.most):
                batch.append(self.waiting.pop(0))
                size += len(batch[-1][0])
            try:
                results = await self.run([item for items, _ in batch for item in items])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            at = 0
            for items, done in batch:
                if not done.done():
                    done.set_result(results[at : at + len(items)])
                at += len(items)


def for_loop(registry: weakref.WeakKeyDictionary, factory: Callable[[], Any]) -> Any:
    """The running event loop's entry of `registry`, made by `factory` on first use."""
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        found = registry[loop] = factory()
    return found
