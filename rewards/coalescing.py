"""Concurrent calls that share one round trip: group commit for postings, grouped balance reads.

On this machine a round trip to PostgreSQL costs more CPU, on both sides, than the work of
a posting or a balance read. So concurrent requests in a worker are queued, and whoever
finds no batch running (or fewer than `in_flight`, with at least `overlap_at` waiting)
starts one, which takes everything queued (up to `max_batch`) to the database in one call.
Alone, a request is a batch of one and waits for nothing; under load, the requests that
arrived while the database was busy share the next call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# a batch's function answers each item with its result, or with the exception its caller gets
RunBatch = Callable[[list[Item]], Awaitable[list[Any]]]


class Coalescer(Generic[Item, Result]):
    def __init__(self, run_batch: RunBatch[Item], *, in_flight: int, max_batch: int = 64, overlap_at: int = 1) -> None:
        """`overlap_at`: while a batch is in flight, another starts only once this many wait."""
        self.run_batch = run_batch
        self.in_flight = in_flight
        self.overlap_at = overlap_at
        self.max_batch = max_batch
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running == 0 or (self._running < self.in_flight and len(self._queue) >= self.overlap_at):
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
                try:
                    results = await self.run_batch([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - the whole batch failed: every caller hears why
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
        finally:
            self._running -= 1


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # the caller went away (client disconnected); what it asked for stands
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def shared(owner: Any, name: str, make: Callable[[], Coalescer[Any, Any]]) -> Coalescer[Any, Any]:
    """The owner's (a Database's) coalescer called `name`, made on first use and kept in the
    owner's `coalescers` (a WeakKeyDictionary lookup per posting showed in the profile)."""
    found = owner.coalescers.get(name)
    if found is None:
        found = owner.coalescers[name] = make()
    return found
