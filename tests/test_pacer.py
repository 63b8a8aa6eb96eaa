"""Tests for the tenant pacer, the retry budget and the backoff helpers.

Timing tests run the event loop on virtual time (the ``vclock`` fixture): the loop's clock only
moves when every task is asleep, and then jumps straight to the next timer, so a minute of pacing
takes milliseconds and the timestamps are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from local import ManualClock, max_in_window

from worker.pacer import Pacer, PacerConfig, Sent

Clock = Callable[[], float]
EPS = 1e-9


@pytest.fixture
async def vclock() -> AsyncIterator[Clock]:
    """Put the running loop on virtual time and return its clock."""
    loop = asyncio.get_running_loop()
    selector: Any = loop._selector  # type: ignore[attr-defined]
    real_select = selector.select
    now = [loop.time()]

    def select(timeout: float | None = None) -> Any:
        if timeout is not None and timeout > 0:
            now[0] += timeout  # nothing is runnable: jump to the next timer
            timeout = 0
        return real_select(timeout)

    loop.time = lambda: now[0]  # type: ignore[method-assign]
    selector.select = select
    try:
        yield loop.time
    finally:
        del loop.time
        del selector.select


def zero() -> float:
    """A rand() that never jitters."""
    return 0.0


async def run_clients(
    pacer: Pacer, clock: Clock, count: int, latency: float, *, seed: int = 7
) -> tuple[list[float], int]:
    """Run ``count`` one-request clients; return entry times and the most seen in flight."""
    rng = random.Random(seed)
    entries: list[float] = []
    peak = 0

    async def client() -> None:
        nonlocal peak
        async with pacer.slot():
            entries.append(clock())
            peak = max(peak, pacer.in_flight)
            await asyncio.sleep(latency * (0.5 + rng.random()))

    async with asyncio.TaskGroup() as tg:
        for _ in range(count):
            tg.create_task(client())
    return entries, peak


async def traffic(pacer: Pacer, clock: Clock, seconds: float, *, latency: float = 0.01,
                  headers: dict[str, str] | None = None) -> list[Sent]:
    """Fifty clients send through the pacer, as fast as it lets, for ``seconds``; every answer
    a 200 (with ``headers``). Returns the entries."""
    sent: list[Sent] = []
    end = clock() + seconds

    async def client() -> None:
        while clock() < end:
            async with pacer.slot() as entry:
                sent.append(entry)
                await asyncio.sleep(latency)
            pacer.observe(200, headers or {}, entry)

    async with asyncio.TaskGroup() as tg:
        for _ in range(50):
            tg.create_task(client())
    return sent


# -- both caps -----------------------------------------------------------------------------


async def test_never_more_than_concurrency_in_flight(vclock: Clock) -> None:
    """Many clients with long requests never exceed the concurrency limit, and reach it."""
    pacer = Pacer(PacerConfig(rate=1000, concurrency=5), clock=vclock)
    _, peak = await run_clients(pacer, vclock, 60, latency=0.5)
    assert peak == 5
    assert pacer.stats.max_in_flight == 5
    assert pacer.in_flight == 0
    assert pacer.stats.requests == 60


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 0.1), (200.0, 0.1), (3.0, 1.0)])
async def test_rate_never_exceeded_over_sliding_windows(
    vclock: Clock, rate: float, burst: float
) -> None:
    """Entries in any window W >= 1 s stay within rate*W + capacity, at close to full rate."""
    pacer = Pacer(PacerConfig(rate=rate, concurrency=500, burst_seconds=burst), clock=vclock)
    count = int(rate * 10)
    entries, _ = await run_clients(pacer, vclock, count, latency=0.05)
    capacity = max(1.0, rate * burst)
    for width in (1.0, 2.5, 7.0):
        assert max_in_window(entries, width, EPS) <= rate * width + capacity
    assert max(entries) - min(entries) <= (count - 1) / rate + 0.3  # no needless slowness


async def test_rate_bound_clients_are_admitted_in_batches(vclock: Clock) -> None:
    """When the rate binds, a freed slot admits nobody early: the timer admits a batch per wake.

    The bucket holds 10 ms of rate (issue 13: a bigger burst is what a fixed window's edge
    refuses), so at 500/s a wake-up admits about 3, not 1; the rate and the total time are
    unchanged.
    """
    pacer = Pacer(PacerConfig(rate=500, concurrency=40), clock=vclock)
    entries, peak = await run_clients(pacer, vclock, 2000, latency=0.05)
    wakeups = len(set(entries))
    assert wakeups <= 2000 / 2.5
    assert peak <= 40
    assert max_in_window(entries, 1.0, EPS) <= 500 + 5
    assert max(entries) - min(entries) <= 2000 / 500 + 0.3  # full rate, no needless slowness


async def test_both_caps_hold_at_once(vclock: Clock) -> None:
    """Concurrency-bound and rate-bound phases both respect their cap."""
    pacer = Pacer(PacerConfig(rate=50, concurrency=4), clock=vclock)
    entries, peak = await run_clients(pacer, vclock, 200, latency=0.2)
    assert peak <= 4
    for width in (1.0, 3.0):
        assert max_in_window(entries, width, EPS) <= 50 * width + 5


async def test_bucket_starts_with_one_token_and_banks_nothing_while_idle(vclock: Clock) -> None:
    """A fresh pacer lets one request through at once; after a long idle only `capacity` do."""
    pacer = Pacer(PacerConfig(rate=100, concurrency=100, burst_seconds=0.1), clock=vclock)
    start = vclock()
    entries, _ = await run_clients(pacer, vclock, 5, latency=0.01)
    assert sum(t == start for t in entries) == 1
    await asyncio.sleep(3600)
    restart = vclock()
    entries, _ = await run_clients(pacer, vclock, 50, latency=0.01)
    assert sum(t == restart for t in entries) == 10  # capacity = 100 * 0.1
    assert max_in_window(entries, 1.0, EPS) <= 100 + 10


async def test_waiters_are_served_fifo(vclock: Clock) -> None:
    """Both the permit queue and the token queue serve callers in arrival order."""
    for config in (PacerConfig(rate=1000, concurrency=1), PacerConfig(rate=5, concurrency=50)):
        pacer = Pacer(config, clock=vclock)
        order: list[int] = []

        async def client(i: int, pacer: Pacer = pacer, order: list[int] = order) -> None:
            async with pacer.slot():
                order.append(i)
                await asyncio.sleep(0.01)

        async with asyncio.TaskGroup() as tg:
            for i in range(30):
                tg.create_task(client(i))
        assert order == list(range(30))


async def test_lower_rate_applies_to_waiting_clients(vclock: Clock) -> None:
    """A slow-down from the headers binds clients that were already queued."""
    pacer = Pacer(PacerConfig(rate=10, concurrency=100), clock=vclock)
    tight = {"RateLimit-Limit": "50000;w=60", "RateLimit-Remaining": "20", "RateLimit-Reset": "10"}

    async def slow_down() -> None:
        await asyncio.sleep(2.0)
        pacer.observe(200, tight)

    task = asyncio.create_task(slow_down())
    entries, _ = await run_clients(pacer, vclock, 40, latency=0.01)
    await task
    assert pacer.rate == pytest.approx(0.9 * 20 / 9.5)  # the window ends 9-10 s on: 9.5 s
    late = [t for t in entries if t > min(entries) + 2.0]
    assert max_in_window(late, 5.0, EPS) <= 1.8 * 5 + 1


# -- learning from headers -----------------------------------------------------------------


def test_header_guard_holds_until_the_window_ends_then_the_plan_returns() -> None:
    """A budget below safety x plan slows at once; the guard lasts as long as its window."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(rate=10), clock=clock, rand=zero)
    pacer.observe(
        200, {"RateLimit-Limit": "50000;w=60", "RateLimit-Remaining": "20", "RateLimit-Reset": "10"}
    )
    assert pacer.rate == pytest.approx(0.9 * 20 / 9.5)  # the window ends 9-10 s from now
    for _ in range(18):
        clock.now += 0.5
        pacer.observe(200, {})
        assert pacer.rate == pytest.approx(0.9 * 20 / 9.5)
    clock.now += 1.1  # past the latest end: a new window, the plan again
    pacer.observe(200, {})
    assert pacer.rate == pytest.approx(10.0)


def test_budget_floor_and_no_recovery_on_errors() -> None:
    """A near-empty window slows to min_rate, not below; 429s and 5xx never recover the rate."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(rate=10, min_rate=0.5), clock=clock, rand=zero)
    pacer.observe(200, {"RateLimit-Remaining": "1", "RateLimit-Reset": "60"})
    assert pacer.rate == pytest.approx(0.5)
    for status in (429, 500, 503):
        clock.now += 1
        pacer.observe(status, {})
        assert pacer.rate == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rate", "share", "limit", "planned"),
    [
        (1000.0, 0.3, "100;w=10", 3.0),
        (1000.0, 0.5, "2250000, 50000;w=60, 2250000;w=3600, 27000000;w=86400", 156.25),
        (1000.0, 0.5, "50000;w=60", 50_000 / 60 * 0.5),
        (10.0, 0.5, "50000;w=60", 10.0),  # never above --rate
    ],
)
def test_quota_share_plans_the_rate(rate: float, share: float, limit: str, planned: float) -> None:
    """planned = min(rate, quota_share * the lowest quota/window announced); applied at once."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(rate=rate, quota_share=share), clock=clock)
    pacer.observe(200, {"RateLimit-Limit": limit})
    assert pacer.planned_rate == pytest.approx(planned)
    assert pacer.rate == pytest.approx(planned)
    for _ in range(100):
        clock.now += 1
        pacer.observe(200, {})
    assert pacer.rate == pytest.approx(planned)


def test_remaining_zero_closes_the_gate_until_reset() -> None:
    """RateLimit-Remaining 0 pauses everyone until the reset (clamped to max_pause); the rate
    itself is left alone, since the window, not the pace, is spent."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(max_pause=900), clock=clock, rand=zero)
    pacer.observe(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "30"})
    assert pacer.paused_until == pytest.approx(clock.now + 30)
    assert pacer.rate == pytest.approx(10.0)
    pacer.observe(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "3600"})
    assert pacer.paused_until == pytest.approx(clock.now + 900)


@pytest.mark.parametrize(
    ("configured", "header", "expected"),
    [(100, "40", 36), (8, "40", 8), (100, "4", 3), (100, "1", 1), (8, "8", 8), (9, "8", 7)],
)
def test_concurrency_header_caps_the_limit_with_margin(
    configured: int, header: str, expected: int
) -> None:
    """Asked for more than Concurrency-Limit-Limit: max(1, floor(limit x 0.9)), leaving a margin
    to the tenant's other clients; asked for no more: --concurrency stands."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(concurrency=configured), clock=clock)
    pacer.observe(200, {"Concurrency-Limit-Limit": header})
    assert pacer.concurrency_limit == expected
    for _ in range(50):
        clock.now += 1
        pacer.observe(200, {})
    assert pacer.concurrency_limit == expected


# -- 429s ------------------------------------------------------------------------------------


async def test_concurrency_429_shrinks_the_limit_but_keeps_the_gate_open(vclock: Clock) -> None:
    """Each concurrency 429 cuts the limit by 0.7 down to 1; other slots go on at once."""
    pacer = Pacer(PacerConfig(concurrency=8), clock=vclock)
    gate = pacer.paused_until
    limits = []
    for _ in range(5):
        pacer.on_concurrency_limited()
        limits.append(pacer.concurrency_limit)
    assert limits == [5, 3, 2, 1, 1]
    assert pacer.paused_until == gate
    assert pacer.stats.concurrency_limited == 5
    before = vclock()
    async with pacer.slot():
        assert vclock() == before


async def test_shrinking_below_in_flight_blocks_until_enough_leave(vclock: Clock) -> None:
    """With 5 in flight and the limit cut to 2, a newcomer waits until only 1 is left."""
    pacer = Pacer(PacerConfig(rate=1000, concurrency=5), clock=vclock)
    releases = [asyncio.Event() for _ in range(5)]

    async def holder(done: asyncio.Event) -> None:
        async with pacer.slot():
            await done.wait()

    holders = [asyncio.create_task(holder(e)) for e in releases]
    await asyncio.sleep(1)
    assert pacer.in_flight == 5
    pacer.on_concurrency_limited()
    pacer.on_concurrency_limited()
    assert pacer.concurrency_limit == 2
    entered = asyncio.Event()

    async def newcomer() -> None:
        async with pacer.slot():
            entered.set()

    late = asyncio.create_task(newcomer())
    for i in range(4):
        releases[i].set()
        await asyncio.sleep(0.1)
        assert entered.is_set() == (i == 3)
    releases[4].set()
    await asyncio.gather(late, *holders)
    assert pacer.in_flight == 0


def test_concurrency_recovers_gradually_up_to_the_ceiling() -> None:
    """Successes grow a cut limit back, never above min(--concurrency, header cap)."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(concurrency=20, recovery_seconds=10), clock=clock)
    pacer.observe(200, {"Concurrency-Limit-Limit": "10"})
    assert pacer.concurrency_limit == 9
    for _ in range(6):
        pacer.on_concurrency_limited()
    assert pacer.concurrency_limit == 1
    clock.now += 1
    pacer.observe(200, {"Concurrency-Limit-Limit": "10", "Concurrency-Limit-Remaining": "0"})
    assert pacer.concurrency_limit == 1  # tenant saturated: hold
    seen = []
    for _ in range(30):
        clock.now += 0.5
        pacer.observe(200, {})
        seen.append(pacer.concurrency_limit)
    assert seen == sorted(seen)
    assert seen[2] < 9
    assert max(seen) == 9


async def test_rate_429_closes_the_gate_for_everyone(vclock: Clock) -> None:
    """After on_rate_limited no slot is entered before the pause ends, queued ones included."""
    pacer = Pacer(PacerConfig(rate=2, concurrency=50), clock=vclock, rand=lambda: 0.5)
    entries: list[float] = []
    paused: list[tuple[float, float]] = []

    async def client() -> None:
        async with pacer.slot():
            entries.append(vclock())

    async def throttle() -> None:
        await asyncio.sleep(1.2)
        paused.append((vclock(), pacer.on_rate_limited(30.0, None)))

    async with asyncio.TaskGroup() as tg:
        for _ in range(10):
            tg.create_task(client())
        tg.create_task(throttle())
    ((t0, pause),) = paused
    assert pause == pytest.approx(30 + 0.5 * 3.0)
    assert pacer.paused_until == pytest.approx(t0 + pause)
    assert all(t <= t0 or t >= t0 + pause - EPS for t in entries)
    assert sum(t <= t0 for t in entries) == 3  # 0.0, 0.5, 1.0 s before the 429
    assert len(entries) == 10


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [
        (10.0, 10 + 0.5 * 1.0),
        (100.0, 100 + 0.5 * 5.0),  # jitter is capped at 5 s
        (-4.0, 0.0),
        (None, 0.0),  # a bare 429 leaves the gate open
    ],
)
def test_rate_429_pause_length(retry_after: float | None, pause: float) -> None:
    """The pause is Retry-After plus uniform(0, min(5, 10 %)); none without it."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(), clock=clock, rand=lambda: 0.5)
    assert pacer.on_rate_limited(retry_after) == pytest.approx(pause)
    assert pacer.paused_until == pytest.approx(clock.now + pause)


async def test_bare_429_does_not_close_the_gate_for_everyone(vclock: Clock) -> None:
    """A 429 without Retry-After or a spent window: other requests go on at the (cut) rate."""
    pacer = Pacer(PacerConfig(rate=20, concurrency=50), clock=vclock, rand=zero)
    entries: list[float] = []

    async def client() -> None:
        async with pacer.slot() as sent:
            entries.append(sent.at)
            await asyncio.sleep(0.01)
        pacer.observe(200, {}, sent)

    async def throttle() -> None:
        await asyncio.sleep(0.5)
        refused = Sent(vclock() - 0.01, pacer.stats.requests)
        pacer.observe(429, {}, refused)
        assert pacer.on_rate_limited(None, refused) == 0.0

    async with asyncio.TaskGroup() as tg:
        for _ in range(30):
            tg.create_task(client())
        tg.create_task(throttle())
    gaps = [b - a for a, b in itertools.pairwise(sorted(entries))]
    assert max(gaps) < 0.2  # nobody waited a second behind a closed gate
    assert pacer.stats.pauses == 0
    assert pacer.rate < 20  # but it was a congestion event


async def test_rate_429_cut_is_relative_to_the_measured_rate(vclock: Clock) -> None:
    """Told 1000/s but held to ~40/s by the concurrency limit: a 429 cuts to 0.7 x ~40, not to
    0.7 x 1000, and recovery climbs back toward ~40 (the rate that worked)."""
    pacer = Pacer(PacerConfig(rate=1000, concurrency=2), clock=vclock, rand=zero)
    await traffic(pacer, vclock, 2.0, latency=0.05)  # 2 in flight x 20/s each = 40/s
    meter, now = pacer._congestion.meter, vclock()
    # the measure the cut reads: the second's count or the last 8 sends', at least the accepted
    measured = max(meter.sent_rate(now), meter.recent_rate(now), meter.accepted_rate(now))
    assert 30 <= measured <= 50
    pacer.on_rate_limited(None, Sent(vclock(), pacer.stats.requests))
    assert pacer.rate == pytest.approx(0.7 * measured, rel=0.1)
    await traffic(pacer, vclock, 5.0, latency=0.05)
    assert pacer.rate <= 2 * pacer._congestion.meter.sent_rate(vclock()) + EPS


async def test_rate_429_burst_cuts_once(vclock: Clock) -> None:
    """429s for requests sent before the cut are one event; one sent after cuts again."""
    pacer = Pacer(PacerConfig(rate=10, concurrency=50), clock=vclock, rand=zero)
    sent = await traffic(pacer, vclock, 2.0)
    for refused in sent[-8:]:  # eight in a row refused, all sent at 10/s
        pacer.observe(429, {}, refused)
        pacer.on_rate_limited(None, refused)
    assert pacer.rate == pytest.approx(7.0, rel=0.05)  # cut once, relative to ~10/s sent
    assert pacer.summary()["throttle_events"] == 1
    assert pacer.summary()["throttles_coalesced"] == 7
    sent = await traffic(pacer, vclock, 0.3)
    pacer.on_rate_limited(None, sent[-1])  # sent after the cut: a new event
    assert pacer.summary()["throttle_events"] == 2
    assert pacer.stats.rate_limited == 9


def test_pause_until_only_extends() -> None:
    """pause_until never shortens an existing pause."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(), clock=clock)
    pacer.pause_until(clock.now + 50)
    pacer.pause_until(clock.now + 10)
    assert pacer.paused_until == clock.now + 50


# -- cancellation ----------------------------------------------------------------------------


async def test_cancelled_permit_waiters_leak_nothing(vclock: Clock) -> None:
    """Waiters cancelled in the permit queue free their place; the others enter in order."""
    pacer = Pacer(PacerConfig(rate=1000, concurrency=1), clock=vclock)
    release = asyncio.Event()
    order: list[int] = []

    async def client(i: int) -> None:
        async with pacer.slot():
            order.append(i)
            if i == 0:
                await release.wait()

    tasks = [asyncio.create_task(client(i)) for i in range(6)]
    await asyncio.sleep(1)
    tasks[2].cancel()
    tasks[4].cancel()
    await asyncio.sleep(1)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [isinstance(r, asyncio.CancelledError) for r in results] == [
        False, False, True, False, True, False,
    ]  # fmt: skip
    assert order == [0, 1, 3, 5]
    assert pacer.in_flight == 0


async def test_permit_granted_then_cancelled_is_handed_back(vclock: Clock) -> None:
    """A waiter cancelled after being handed a permit, before it ran, returns the permit."""
    pacer = Pacer(PacerConfig(rate=1000, concurrency=1), clock=vclock)
    holder = pacer.slot()
    await holder.__aenter__()

    async def waiter() -> None:
        async with pacer.slot():
            pytest.fail("a cancelled waiter must not enter")

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.1)
    await holder.__aexit__(None, None, None)  # hands the permit to `task` ...
    task.cancel()  # ... which is cancelled before it can run
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert pacer.in_flight == 0
    async with asyncio.timeout(1), pacer.slot():
        assert pacer.in_flight == 1


async def test_cancel_while_waiting_for_a_token_spends_no_token(vclock: Clock) -> None:
    """A client cancelled while waiting for a token leaves that token to the next client."""
    pacer = Pacer(PacerConfig(rate=1, min_rate=0.5, concurrency=10), clock=vclock)
    start = vclock()
    async with pacer.slot():  # spends the one initial token
        pass

    async def client() -> float:
        async with pacer.slot():
            return vclock()

    doomed = asyncio.create_task(client())
    await asyncio.sleep(0.5)
    assert pacer.in_flight == 0  # waiting for a token holds no permit
    doomed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    assert pacer.in_flight == 0
    assert await client() == pytest.approx(start + 1.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client()
    assert pacer.in_flight == 0


# -- a noisy tenant ----------------------------------------------------------------------------


async def test_invariants_hold_under_random_throttling(vclock: Clock) -> None:
    """Random headers and 429s never break the caps: in flight <= limit, rate <= --rate."""
    config = PacerConfig(rate=20, concurrency=6, recovery_seconds=2)
    rng = random.Random(3)
    pacer = Pacer(config, clock=vclock, rand=rng.random)
    entries: list[float] = []

    async def client() -> None:
        async with pacer.slot():
            entries.append(vclock())
            assert pacer.in_flight <= pacer.concurrency_limit
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        roll = rng.random()
        remaining = str(rng.randrange(0, 400))
        pacer.observe(
            429 if roll < 0.05 else 200,
            {
                "RateLimit-Remaining": remaining,
                "RateLimit-Reset": "20",
                "Concurrency-Limit-Limit": "9",
            },
        )
        if roll < 0.03:
            pacer.on_rate_limited(rng.choice([None, 0.5, 2.0]), Sent(vclock() - 0.2, 0))
        elif roll < 0.05:
            pacer.on_concurrency_limited()

    async with asyncio.TaskGroup() as tg:
        for _ in range(400):
            tg.create_task(client())
    assert len(entries) == 400
    assert pacer.stats.max_in_flight <= 6
    for width in (1.0, 4.0):
        assert max_in_window(entries, width, EPS) <= 20 * width + 2
    assert pacer.stats.peak_rate <= 20
    assert pacer.in_flight == 0


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": 0},
        {"concurrency": 0},
        {"quota_share": 1.5},
        {"rate_cut": 1.0},
        {"min_rate": -1},
        {"max_pause": -1},
    ],
)
def test_config_rejects_out_of_range_values(bad: dict[str, float]) -> None:
    """Out-of-range settings raise ValueError naming the field."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        PacerConfig(**bad)  # type: ignore[arg-type]


def test_budget_within_the_safety_margin_does_not_bind() -> None:
    """A job told the whole quota keeps its plan while the window can sustain safety x plan."""
    clock = ManualClock(1000.0)
    pacer = Pacer(PacerConfig(rate=500, quota_share=1.0), clock=clock, rand=zero)
    # 500/s in 10 s windows; Reset rounded up to whole seconds: 4850 left with 9-10 s to go
    pacer.observe(200, {"RateLimit-Limit": "5000;w=10", "RateLimit-Remaining": "4850",
                        "RateLimit-Reset": "10"})
    assert pacer.rate == pytest.approx(500)
    clock.now += 8.0  # 1-2 s left, midpoint 1.5 s: 600/1.5 = 400/s < 0.9 x 500
    pacer.observe(200, {"RateLimit-Remaining": "600", "RateLimit-Reset": "2"})
    assert pacer.rate == pytest.approx(400 * 0.9)


async def test_header_slowdown_lifts_when_the_headers_show_room_but_a_429_cut_climbs(
        vclock: Clock) -> None:
    """Rates lowered by the headers return to the plan at once; a 429 cut climbs back by
    CUBIC, concave: most of the way within seconds, then never past the plan."""
    pacer = Pacer(PacerConfig(rate=100, concurrency=50), clock=vclock, rand=zero)
    pacer.observe(200, {"RateLimit-Remaining": "105", "RateLimit-Reset": "11"})
    assert pacer.rate == pytest.approx(9.0)  # 105 left over 10-11 s (10.5), x 0.9
    pacer.observe(200, {"RateLimit-Remaining": "1000", "RateLimit-Reset": "5"})
    assert pacer.rate == pytest.approx(100)
    await traffic(pacer, vclock, 2.0)
    pacer.on_rate_limited(None, Sent(vclock(), pacer.stats.requests))
    cut = pacer.rate
    assert cut == pytest.approx(70, rel=0.05)
    seen = []
    for _ in range(8):
        await traffic(pacer, vclock, 0.5)
        seen.append(pacer.rate)
    assert seen == sorted(seen)
    assert seen[0] > cut
    assert seen[3] > 90  # concave: most of the way back within 2 s
    assert seen[-1] == pytest.approx(100)  # the plan, never more
