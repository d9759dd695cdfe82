"""Calls of one event loop that come together leave together.

A busy server runs many consumers on one loop; each one's Redis call is a round trip, a
syscall each way and a wake-up of Redis. `LoopBatcher` lets those that arrive while a call is
in flight wait and go in the next one, together (nothing waits when the server is idle: the
first call leaves at once):

    batcher = for_loop(_registry, lambda: LoopBatcher(send_many, most=500))
    results = await batcher.submit(items)   # send_many(all waiting items) → one result each

Order is kept: a batch leaves after the one before it has returned. Each caller gets the
results of its own items, or the batch's error.

With `eager_after` (seconds), a call that finds the batcher idle for at least that long runs
in the caller's own task instead of a drain task's: no task to start and no future to hand
the results back through, two turns of the loop fewer for a server that is not busy. What
comes while it is in flight waits and goes together once it has returned, as above; a busy
loop, whose batcher is never idle that long, batches as before. Such a call is the caller's:
if the caller is cancelled, so is its call (a drain task's call goes on for the others).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# The idleness after which a message's statement runs in its caller's task
# (`messaging.services._send_batcher`): longer than a busy loop's gaps between statements,
# shorter than an idle one's (docs/messaging.md, session 28: 0.5 ms cost some throughput
# under load). The frame batcher has none: a burst after a quiet spell would send its first
# frame alone and the others one round trip later.
EAGER_AFTER = 0.001


class LoopBatcher(Generic[Item, Result]):
    """`run(items)` returns one result per item, in order; `most` caps a batch (a caller's
    items are never split: one larger than `most` leaves alone). With `concurrency` > 1, up to
    that many calls are in flight at once (then batches may finish out of order)."""

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        most: int,
        concurrency: int = 1,
        eager_after: float | None = None,
    ) -> None:
        self.run = run
        self.most = most
        self.concurrency = concurrency
        self.eager_after = eager_after
        self.waiting: list[tuple[list[Item], asyncio.Future]] = []
        self.tasks: set[asyncio.Task] = set()  # held: the loop keeps only a weak reference
        self.eager = 0  # calls in flight in their callers' tasks
        self.idle_since = float("-inf")  # loop time when the last call in flight returned

    def _in_flight(self) -> int:
        return len(self.tasks) + self.eager

    async def submit(self, items: list[Item]) -> list[Result]:
        loop = asyncio.get_running_loop()
        if (
            self.eager_after is not None
            and not self.waiting
            and not self._in_flight()
            and loop.time() - self.idle_since >= self.eager_after
        ):
            self.eager += 1
            try:
                return await self.run(items)
            finally:
                self.eager -= 1
                self._returned(loop)
        done = loop.create_future()
        self.waiting.append((items, done))
        self._start_drain(loop)
        return await done

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.waiting and self._in_flight() < self.concurrency:
            self.tasks.add(loop.create_task(self._drain()))

    def _returned(self, loop: asyncio.AbstractEventLoop) -> None:
        """An eager call has returned: note when the batcher became idle, or start a drain for
        what came meanwhile (none was started while the slots were taken)."""
        if not self._in_flight():
            self.idle_since = loop.time()
        self._start_drain(loop)

    async def _drain(self) -> None:
        try:
            await self._drain_waiting()
        finally:  # in the step that found nothing waiting: a later submit starts a new drain
            self.tasks.discard(asyncio.current_task())
            if not self._in_flight():
                self.idle_since = asyncio.get_running_loop().time()

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
