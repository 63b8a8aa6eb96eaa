"""Pacing for one Zuora tenant: a rate bucket, a resizable concurrency limit and a pause gate.

One :class:`Pacer` per tenant is shared by every coroutine that talks to it (listing, cancels,
follow-up GETs, retries), so every request counts against the same budget. Each attempt runs
inside ``async with pacer.slot() as sent:``, which waits for, in order:

1. the pause gate (closed for everyone after a 429 with Retry-After, when the window's
   allowance from `RateLimit-Remaining` is all sent, or for a probe when a limiter refuses
   everything);
2. a concurrency permit (the limit shrinks on concurrency 429s and header caps);
3. a rate token from a bucket whose rate changes at run time.

A caller that finds nobody queued and all three free enters at once, without suspending. Others
queue FIFO on a future each; one timer (or a slot being left, or the limit growing) pumps the
queue: it re-checks all three and hands the head permit and token in one step, as many heads as
are free in the same loop iteration, so no token is spent while waiting for a permit, nobody
enters while the gate is closed, and a shrunk limit binds at once. While tokens are short the
timer naps a few milliseconds past the next token (within the burst allowance), so a high rate
wakes the loop once per few requests, not once per request. After every
response the caller calls :meth:`Pacer.observe`; on a 429 it also calls
:meth:`Pacer.on_rate_limited` or :meth:`Pacer.on_concurrency_limited`.

Rate policy (pacing.md §5, §7; issue 13). The rate is the lowest of:

- the *plan*: ``min(config.rate, quota_share x the lowest quota/window announced)``, and the
  header *guard* when another client shares the window (``worker.quota``: whole-second rounding
  of ``RateLimit-Reset`` and placeholder values are handled there);
- after a rate 429, the *congestion ceiling* (``worker.congestion``): a cut to 0.7 x the rate
  really sent, then a CUBIC climb back toward the rate that worked. 429s for requests sent
  before the last cut are the same event and cut nothing.

A rate 429 closes the gate for everyone only when the server says for how long (Retry-After, or
RateLimit-Remaining 0 with a Reset): a bare 429 leaves the gate open, and the retry layer backs
that one request off. ``RateLimit-Remaining: 0`` on any answer, or as many requests sent as the
last answer's Remaining allowed, closes the gate until the window's end. After the first
congestion event the bucket holds 1.5 tokens: requests go evenly spaced. The concurrency
limit recovers linearly, at ``ceiling / recovery_seconds`` permits per second of successful
traffic (one response earns at most one second, so idle time banks nothing). The rate never
exceeds ``config.rate`` and in-flight requests never exceed the limit.

Retries (backoff, Retry-After, the job's retry budget) live in ``worker.retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from worker.congestion import Congestion
from worker.keys import default_of
from worker.quota import Quota
from worker.ratelimit_headers import ConcurrencyInfo, parse_limits

__all__ = [
    "Pacer",
    "PacerConfig",
    "PacerStats",
    "Sent",
    "jitter",
]

Clock = Callable[[], float]
Rand = Callable[[], float]

_NAP_S = 0.25
"""Longest single sleep while waiting for a token, so a raised rate takes effect promptly."""
_MAX_RECOVERY_STEP_S = 1.0
"""The most recovery time one response can earn: nothing is banked while idle or paused."""
_RATE_STEP = 0.01
"""A climb smaller than this fraction of the rate waits for the next answer (fewer re-arms)."""
_MIN_NAP_S = 1e-6
"""Shortest token wait, so float rounding can never turn the wait into a zero-length spin."""
_BATCH_NAP_S = 0.04
"""Most extra nap past the next token (at most half the bucket's room above one token, so
nothing is lost to the cap), so that one wake-up admits several waiters: about 3 at 500/s with
the default 10 ms bucket, not 1."""
_STRICT_CAPACITY = 1.5
"""The smallest bucket (and the bucket after a congestion event): no burst of two, but half a
token of slack, so a timer that fires late does not cost that lateness on every request."""
_TOKEN_EPS = 1e-9
"""Float slack on the token count (a refill of exactly 1 token may land a hair below 1)."""
MAX_PAUSE_S = 900.0
"""A pause (Retry-After, RateLimit-Reset) longer than this is not waited out: the job stops."""
_JITTER_CAP_S = 5.0
_JITTER_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """Pacing knobs; every rate is in requests per second.

    Attributes:
        rate: upper bound on the request rate, never exceeded (``--rate``).
        concurrency: upper bound on requests in flight (``--concurrency``).
        quota_share: fraction of the header-reported quota this job may plan to use.
        burst_seconds: bucket capacity is ``max(1.5, rate * burst_seconds)``: 10 ms of rate
            by default, since a burst is what a fixed window's edge refuses first.
        safety: factor applied to the header guard's budget ``remaining / time left``.
        concurrency_margin: when ``concurrency`` is above `Concurrency-Limit-Limit`, the limit
            is capped at ``max(1, floor(Concurrency-Limit-Limit * margin))``.
        min_rate: floor for slow-downs and cuts (lowered to the planned rate if that is smaller).
        recovery_seconds: time of successful traffic for the concurrency limit to climb from
            zero back to its ceiling; the climb is linear.
        rate_cut: CUBIC's beta: a congestion event cuts the measured rate to this fraction.
        concurrency_cut: multiplicative decrease of the concurrency limit on a concurrency 429.
        max_pause: a pause longer than this is not waited; the caller stops the job.

    Raises:
        ValueError: when a value is out of range (names the field).
    """

    rate: float = default_of("pacing.rate")
    concurrency: int = default_of("pacing.concurrency")
    quota_share: float = default_of("pacing.quota_share")
    burst_seconds: float = 0.01
    safety: float = 0.9
    concurrency_margin: float = 0.9
    min_rate: float = 0.5
    recovery_seconds: float = 10.0
    rate_cut: float = 0.7
    concurrency_cut: float = 0.7
    max_pause: float = MAX_PAUSE_S

    def __post_init__(self) -> None:
        checks = {
            "rate": 0 < self.rate < math.inf,
            "concurrency": self.concurrency >= 1,
            "quota_share": 0 < self.quota_share <= 1,
            "burst_seconds": 0 <= self.burst_seconds < math.inf,
            "safety": 0 < self.safety <= 1,
            "concurrency_margin": 0 < self.concurrency_margin <= 1,
            "min_rate": 0 < self.min_rate < math.inf,
            "recovery_seconds": 0 < self.recovery_seconds < math.inf,
            "rate_cut": 0 < self.rate_cut < 1,
            "concurrency_cut": 0 < self.concurrency_cut < 1,
            "max_pause": self.max_pause >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid pacer setting(s): {', '.join(bad)}")


@dataclass(frozen=True, slots=True)
class Sent:
    """A request's entry into the pacer (``async with pacer.slot() as sent``): when, and its
    place in the sending order (1 for the first)."""

    at: float
    seq: int


@dataclass(slots=True)
class PacerStats:
    """Counters for the job summary; mutated only by the pacer.

    Attributes:
        requests: slots entered.
        rate_limited: rate 429s reported through ``on_rate_limited``.
        concurrency_limited: concurrency 429s reported through ``on_concurrency_limited``.
        pauses: times the gate was closed or its pause extended.
        waits_s: total time callers spent in ``slot()`` before entering (summed over callers).
        min_rate_seen: lowest pacing rate applied.
        peak_rate: highest pacing rate applied (never above ``config.rate``).
        min_concurrency_seen: lowest concurrency limit applied.
        max_in_flight: most slots in flight at once.
    """

    requests: int = 0
    rate_limited: int = 0
    concurrency_limited: int = 0
    pauses: int = 0
    waits_s: float = 0.0
    min_rate_seen: float = math.inf
    peak_rate: float = 0.0
    min_concurrency_seen: int = 0
    max_in_flight: int = 0


class Pacer:
    """Shared rate and concurrency pacing for one tenant; see the module docstring.

    Create it inside the running event loop. Waits are the loop's timers (``call_later``), so
    ``clock`` must run at the loop's pace (the default ``time.monotonic`` is the stdlib loop's
    clock); pass ``loop.time`` to run on a virtual-time loop. Not thread-safe: use it from one
    event loop.
    """

    def __init__(
        self,
        config: PacerConfig,
        *,
        clock: Clock = time.monotonic,
        rand: Rand = random.random,
    ) -> None:
        self._cfg = config
        self._clock, self._rand = clock, rand
        now = clock()
        self._quota = Quota(config.rate, config.quota_share, config.safety)
        self._congestion = Congestion(config.rate_cut)
        self._rate = config.rate
        self._capacity = _capacity(config.rate, config.burst_seconds)
        self._tokens = 1.0  # starts with one token, not a full bucket
        self._refilled_at = now
        self._waiters: deque[asyncio.Future[None]] = deque()  # FIFO, granted by _pump()
        self._timer: asyncio.TimerHandle | None = None  # pending _pump() for a token or the gate
        self._granted: deque[asyncio.Future[None]] = deque()  # granted, their task not yet run
        self._requeued: dict[asyncio.Future[None], asyncio.Future[None]] = {}  # revoked -> new
        self._ceiling = config.concurrency
        self._level = float(config.concurrency)
        self._in_flight = 0
        self._paused_until = now
        self._recovered_at = now
        self.stats = PacerStats(
            min_rate_seen=config.rate,
            peak_rate=config.rate,
            min_concurrency_seen=config.concurrency,
        )

    @property
    def rate(self) -> float:
        """Current pacing rate (requests/s)."""
        return self._rate

    @property
    def planned_rate(self) -> float:
        """The plan: ``min(config.rate, quota_share x header quota)``."""
        return self._quota.planned

    @property
    def concurrency_limit(self) -> int:
        """Current limit on requests in flight (>= 1)."""
        return int(self._level)

    @property
    def in_flight(self) -> int:
        """Slots entered and not yet left."""
        return self._in_flight

    @property
    def paused_until(self) -> float:
        """Clock time before which no slot is entered (in the past when the gate is open)."""
        return self._paused_until

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        """How pacing went, for the report: the rate it planned and the slowest it went,
        the concurrency it ended at, pauses and time spent waiting."""
        stats = self.stats
        return {
            "planned_rate": round(self.planned_rate, 3),
            "final_rate": round(self.rate, 3),
            "min_rate": round(stats.min_rate_seen if math.isfinite(stats.min_rate_seen)
                              else self.rate, 3),
            "final_concurrency": self.concurrency_limit,
            "max_in_flight": stats.max_in_flight,
            "gate_pauses": stats.pauses,
            "wait_s": round(stats.waits_s, 3),
            "throttle_events": self._congestion.events,
            "throttles_coalesced": self._congestion.coalesced,
            "header_values_ignored": dict(sorted(self._quota.ignored.items())),
        }

    def slot(self) -> contextlib.AbstractAsyncContextManager[Sent]:
        """Return ``async with pacer.slot() as sent:`` for one request attempt; ``sent`` (a
        :class:`Sent`) goes back to :meth:`observe` and :meth:`on_rate_limited`.

        Entering queues FIFO; the head of the queue waits for the pause gate to open, then for a
        free concurrency permit, then for a rate token, and takes permit and token together.
        Leaving releases the permit, also on exception or cancellation. A caller cancelled while
        waiting has taken nothing.
        """
        return _Slot(self)

    def observe(self, status: int, headers: Mapping[str, str], sent: Sent | None = None) -> None:
        """Learn from one response (call after every response, errors included).

        ``sent`` is its request's entry (what ``async with pacer.slot()`` gives): when it was
        sent bounds when the server answered, and its place in the order dates the answer's
        Remaining. Applies the RateLimit fields (``worker.quota``: plan, guard, a gate pause
        when the window is spent) and `Concurrency-Limit-Limit` (caps the limit). An answer the
        server did not refuse for load (status < 500, not 429) counts as accepted and lets rate
        and concurrency recover; Concurrency-Limit-Remaining 0 holds the limit.
        """
        now = self._clock()
        success = _counts_as_success(status)
        if success:
            self._congestion.on_accepted(now)
        rate_info, concurrency_info = parse_limits(headers)
        if rate_info is not None:
            sent = sent or Sent(now, self.stats.requests)
            spent_until = self._quota.read(rate_info, sent.at, sent.seq, now)
            if spent_until is not None:
                self._pause_at(min(spent_until, now + self._cfg.max_pause), now)
        self._retarget(now, grow=success)
        step = self._recovery_step(now) if success else 0.0
        self._observe_concurrency(concurrency_info, step)

    def on_rate_limited(self, retry_after: float | None, sent: Sent | None = None) -> float:
        """Handle a rate 429 (after :meth:`observe` has read its headers).

        With ``Retry-After`` the gate closes for everyone until then (rounding-aware: the
        window's known end when it falls inside what Retry-After allows), plus jitter
        ``uniform(0, min(5 s, 10 %))``. A bare 429 leaves the gate open, unless the limiter has
        refused several in a row and accepted none (then a short probe pause, see
        ``worker.congestion``).
        Either way it is a congestion event unless its request was sent before the last cut.

        Returns:
            Seconds until the gate opens (0.0 when it is open: the caller backs off this
            request alone). Never raises; the caller compares it with ``config.max_pause``
            and stops the job when it is longer.
        """
        now = self._clock()
        sent_at = now if sent is None else sent.at
        reopened = self._paused_until if self.stats.pauses else -math.inf  # the gate last opened
        self.stats.rate_limited += 1
        if retry_after is not None:
            self._pause_at(self._quota.end.pause_end(max(0.0, retry_after), sent_at, now), now)
        congestion = self._congestion
        cut = congestion.on_throttle(sent_at, now, self._rate,
                                     costly=self._paused_until > now, paused_at=reopened)
        if cut is not None:
            self._set_rate(max(self._floor(), min(cut, self._rate)), now)
        if self._paused_until <= now:
            probe = congestion.probe_delay(now)
            if probe is not None:
                self.pause_until(now + probe * (0.5 + 0.5 * self._rand()))
        return max(0.0, self._paused_until - now)

    def on_concurrency_limited(self) -> None:
        """Handle a concurrency 429: shrink the limit by ``concurrency_cut`` (floor 1).

        The gate stays open for other slots; the caller requeues only that item after its
        Retry-After. Each call cuts once, so call it once per concurrency 429.
        """
        self.stats.concurrency_limited += 1
        self._recovered_at = self._clock()
        self._set_level(max(1.0, math.floor(self.concurrency_limit * self._cfg.concurrency_cut)))

    def pause_until(self, t: float) -> None:
        """Keep the gate closed until clock time ``t``; an earlier ``t`` than now set is ignored.
        Grants whose task has not run yet are taken back: the pause binds them too."""
        if self._close_gate(t) and self._granted and t > self._clock():
            self._revoke(len(self._granted))

    def _close_gate(self, t: float) -> bool:
        """Extend the gate to ``t`` (never shorten it); True when it was extended."""
        if t <= self._paused_until:
            return False
        self._paused_until = t
        self.stats.pauses += 1
        return True

    # -- gate, permits, tokens -------------------------------------------------------------

    async def _enter(self) -> None:
        """Take permit and token now when nobody is queued and all three are free; else queue.

        The permit is checked before the token, so no token is spent while waiting for a
        permit; both are taken in one synchronous step (here or in :meth:`_pump`), so a shrunk
        limit binds every later entry.
        """
        if not self._waiters and self._free(self._clock()) == 0.0:
            self._take()
            return
        await self._queue_up()

    async def _queue_up(self) -> None:
        """Wait in the FIFO queue until :meth:`_pump` grants permit and token.

        Cancelled after the grant but before running, the caller hands both back.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._pump()
        while True:
            try:
                await waiter
            except asyncio.CancelledError:
                self._withdraw(waiter)
                raise
            requeued = self._requeued.pop(waiter, None)
            if requeued is None:
                self._forget_grant(waiter)
                return
            waiter = requeued  # the grant was revoked before we ran: wait again, in place

    def _withdraw(self, waiter: asyncio.Future[None]) -> None:
        """A cancelled waiter leaves the queue; one already granted hands permit and token back."""
        requeued = self._requeued.pop(waiter, None)
        if requeued is not None:
            waiter = requeued
        if waiter.done() and not waiter.cancelled():  # granted
            self._forget_grant(waiter)
            self._in_flight -= 1
            self._tokens = min(self._capacity, self._tokens + 1.0)
        else:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        self._pump()

    def _forget_grant(self, waiter: asyncio.Future[None]) -> None:
        if self._granted and self._granted[0] is waiter:
            self._granted.popleft()
        else:
            with contextlib.suppress(ValueError):
                self._granted.remove(waiter)

    def _revoke(self, count: int) -> None:
        """Take back the last ``count`` grants whose task has not run yet (a shrunk limit or a
        closed gate binds them too) and queue those callers again at the front, in order."""
        granted = self._granted
        if not granted or count <= 0:
            return
        loop = asyncio.get_running_loop()
        for _ in range(min(count, len(granted))):
            old = granted.pop()
            self._in_flight -= 1
            self._tokens = min(self._capacity, self._tokens + 1.0)
            new: asyncio.Future[None] = loop.create_future()
            self._requeued[old] = new
            self._waiters.appendleft(new)
        self._pump()

    def _free(self, now: float) -> float | None:
        """0.0 when gate, permit and token are all free now; else the seconds to wait for the
        gate or the next token, or None when waiting for a permit (a slot left wakes us)."""
        self._refill(now)
        gate = self._paused_until - now
        if gate > 0:
            return gate
        if self._quota.spent(self.stats.requests + len(self._granted), now):
            return self._wait_for_window(now)
        if self._in_flight >= int(self._level):
            return None
        if self._tokens < 1.0 - _TOKEN_EPS:
            need = (1.0 - self._tokens) / self._rate
            batch = min(_BATCH_NAP_S, (self._capacity - 1.0) / self._rate / 2)
            return min(max(need + batch, _MIN_NAP_S), _NAP_S)
        return 0.0

    def _wait_for_window(self, now: float) -> float:
        """The window's allowance is all sent: close the gate until its end (plus jitter),
        without revoking what was granted within the allowance."""
        end = self._quota.end.hi
        self._close_gate(end + jitter(end - now, self._rand))
        return self._paused_until - now

    def _take(self) -> None:
        self._tokens -= 1.0
        self._in_flight += 1

    def _pump(self) -> None:
        """Grant permit and token to as many queue heads as are free now; else arm the timer.

        While the timer is armed (waiting for tokens or the gate), only the timer grants: a slot
        freed meanwhile would admit waiters one token at a time, and one wake-up per request
        costs far more CPU than one per batch (bench/README.md).
        """
        if self._timer is not None:
            return
        waiters = self._waiters
        while waiters:
            head = waiters[0]
            if head.done():  # cancelled, not yet removed by its task
                waiters.popleft()
                continue
            wait = self._free(self._clock())
            if wait is None:
                return  # a slot left or the limit grown pumps again
            if wait > 0.0:
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)
                return
            self._take()
            waiters.popleft()
            head.set_result(None)
            self._granted.append(head)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _rearm(self) -> None:
        """The rate changed: recompute the pending wait (a higher rate may shorten it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiters:
            self._pump()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._waiters:
            self._pump()

    def _refill(self, now: float) -> None:
        elapsed = now - self._refilled_at
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._refilled_at = now

    def _record_entry(self, started: float) -> Sent:
        """Count an entry (the request goes out now)."""
        now = self._clock()
        self._congestion.meter.on_sent(now)
        stats = self.stats
        stats.requests += 1
        stats.waits_s += max(0.0, now - started)
        stats.max_in_flight = max(stats.max_in_flight, self._in_flight)
        return Sent(now, stats.requests)

    # -- learning --------------------------------------------------------------------------

    def _retarget(self, now: float, *, grow: bool) -> None:
        """Move the rate to the lowest of plan, header guard and congestion ceiling: down at
        once, up only on an accepted answer (in steps of at least 1 %, or onto the plan)."""
        quota = self._quota
        by_headers = min(quota.planned, quota.guard(now))
        target = max(self._floor(), min(by_headers, self._congestion.ceiling(now)))
        if target < self._rate:
            if by_headers < self._rate:  # requests sent before this were sent too fast
                self._congestion.cut_at = now
            self._set_rate(target, now)
        elif grow and target > self._rate and (
                target >= self._rate * (1 + _RATE_STEP) or target >= quota.planned):
            self._set_rate(target, now)

    def _observe_concurrency(self, info: ConcurrencyInfo | None, step: float) -> None:
        """Cap the limit by the header (with margin); grow it by ``step`` seconds' worth."""
        if info is not None and info.limit is not None:
            # asked for no more than the tenant allows: the user's number stands; asked for
            # more: leave a margin of the tenant's limit to its other clients
            configured = self._cfg.concurrency
            self._ceiling = configured if configured <= info.limit else max(
                1, math.floor(info.limit * self._cfg.concurrency_margin))
            if self._level > self._ceiling:
                self._set_level(float(self._ceiling))
        saturated = info is not None and info.remaining == 0
        if step > 0 and not saturated and self._level < self._ceiling:
            climb = self._ceiling / self._cfg.recovery_seconds * step
            self._set_level(min(float(self._ceiling), self._level + climb))

    def _recovery_step(self, now: float) -> float:
        step = min(_MAX_RECOVERY_STEP_S, max(0.0, now - self._recovered_at))
        self._recovered_at = now
        return step

    def _pause_at(self, end: float, now: float) -> None:
        """Close the gate until ``end``, plus jitter so clients told the same end part."""
        delay = max(0.0, end - now)
        self.pause_until(now + delay + jitter(delay, self._rand))

    def _floor(self) -> float:
        return min(self._cfg.min_rate, self._quota.planned)

    def _set_rate(self, rate: float, now: float) -> None:
        """Change the bucket's fill rate; tokens earned so far are kept, up to the new capacity."""
        self._refill(now)
        self._rate = rate
        # after a congestion event, evenly spaced: a burst is what limiters refuse first
        self._capacity = _STRICT_CAPACITY if self._congestion.active else _capacity(
            rate, self._cfg.burst_seconds)
        self._tokens = min(self._tokens, self._capacity)
        self._rearm()
        self.stats.min_rate_seen = min(self.stats.min_rate_seen, rate)
        self.stats.peak_rate = max(self.stats.peak_rate, rate)

    def _set_level(self, level: float) -> None:
        grew = int(level) > self.concurrency_limit
        self._level = level
        self._revoke(self._in_flight - int(level))
        self.stats.min_concurrency_seen = min(self.stats.min_concurrency_seen, int(level))
        if grew and self._waiters:
            self._pump()


class _Slot:
    """The ``async with`` of :meth:`Pacer.slot` (a class: cheaper than an async generator)."""

    __slots__ = ("_pacer",)

    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer

    async def __aenter__(self) -> Sent:
        pacer = self._pacer
        started = pacer._clock()
        await pacer._enter()
        return pacer._record_entry(started)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._pacer._leave()


def _capacity(rate: float, burst_seconds: float) -> float:
    return max(_STRICT_CAPACITY, rate * burst_seconds)


def jitter(delay: float, rand: Rand) -> float:
    """``uniform(0, min(5 s, 10 % of delay))``, so callers told the same delay part."""
    return rand() * min(_JITTER_CAP_S, _JITTER_FRACTION * delay)


def _counts_as_success(status: int) -> bool:
    """Any answer the server did not refuse for load (not 429, not 5xx) may let pacing recover."""
    return status < 500 and status != 429
