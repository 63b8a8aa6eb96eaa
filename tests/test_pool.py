"""The bounded worker pool shared by cancels and id fetches."""

from __future__ import annotations

import asyncio

from worker.pool import drain


async def test_drain_handles_every_item_in_order_with_at_most_n_at_once():
    seen: list[int] = []
    running, peak = 0, 0

    async def handle(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen.append(item)
        await asyncio.sleep(0)
        running -= 1

    await drain(range(20), 3, handle, lambda: False)
    assert seen == list(range(20))
    assert peak == 3


async def test_drain_starts_nothing_once_told_to_stop():
    seen: list[int] = []

    async def handle(item: int) -> None:
        seen.append(item)

    await drain(range(10), 2, handle, lambda: len(seen) >= 4)
    assert seen == [0, 1, 2, 3]
