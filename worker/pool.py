"""A bounded pool of workers draining a queue: the shape shared by cancels and id fetches."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def drain(items: Iterable[T], workers: int, handle: Callable[[T], Awaitable[None]],
                stop: Callable[[], bool]) -> None:
    """Handle ``items`` in order with at most ``workers`` at once; start none once ``stop()``.

    The pacer, not the pool, bounds requests in flight; the pool bounds tasks and memory, and
    lets an item wait out its own Retry-After without holding up the others.
    """
    queue = deque(items)

    async def worker() -> None:
        while queue and not stop():
            await handle(queue.popleft())

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(len(queue), workers))):
            group.create_task(worker())
