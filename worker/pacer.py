"""Pacing for one tenant: a paced turn for every request, a resizable concurrency limit, one
gate, and the budgets of the tenant's quota windows.

One :class:`Pacer` per tenant is shared by every coroutine that talks to it (listing, cancels,
GETs, retries), so every request counts against the same quota. Each attempt runs inside
``async with pacer.slot() as sent:``: it takes a concurrency permit, then waits for the gate
and for its turn, ``1 / rate`` after the previous one (evenly spaced: a burst is what a fixed
window's edge refuses first; turns missed while the loop was stalled are taken anew, not all at
once). After every answer the caller calls :meth:`Pacer.observe`; on a
429 also :meth:`Pacer.on_rate_limited` or :meth:`Pacer.on_concurrency_limited`.

**Quota windows** (``worker.ratelimit``). Zuora announces several at once (an API Sandbox:
2,500 a minute, 5,000 an hour, 10,000 a day; failed requests count too).

- A window of ``MAX_PAUSE_S`` or shorter sets the pace: ``min(--rate, quota_share x (quota -
  1) / window)`` over such windows (one request of slack per window, so evenly spaced requests
  never put quota + 1 into one fixed window). When an answer's ``Remaining`` for it says this job
  has sent its ``quota_share`` of what the window had left, the gate closes until its ``Reset``
  (a window of unknown length, a bare ``RateLimit-Limit: 100``, is treated the same).
- Every *longer* window is a budget for this job, not a rate: the job may send at most
  ``quota_share x`` what that window had left (its ``Remaining`` when the answer says which
  window it describes, else its quota), counting every request it sends. When that is spent,
  :class:`QuotaSpent` is raised: the job stops (exit 5), the rest of its runs are left for the
  next job, and the tenant's window is never run dry. (Pacing a day-long window at its average
  rate planned 0.058 requests/s on an API Sandbox: 35 minutes for 120 cancels.) A ``Remaining``
  whose window the answer does not name (the first item's quota and the ``Reset`` agree on none)
  is held to every longer window its ``Reset`` fits in: never guessed to be the minute's.

**Limiters that do not announce themselves** (nginx ``limit_req``, gateways: a bare 429).
A throttle cuts the rate to ``cut x`` the rate really sent over the last second (never from
``--rate``); 429s for requests sent before the cut are the same event. The rate then climbs
additively: quickly back to the rate the limiter was accepting, slowly above it. A bare 429
backs off its own request (``worker.retry``); only after ``PROBE_AFTER`` refusals in a row with
nothing accepted (a spent window the limiter does not announce) does everyone pause, briefly.
A 429 with ``Retry-After`` closes the gate for everyone until then: one gate, whatever closes it.

**Concurrency.** A concurrency 429 shrinks the limit to ``cut x`` (at least 1); it recovers
linearly over ``RECOVERY_S`` of accepted answers. ``Concurrency-Limit-Limit`` caps it (at 90 %
when ``--concurrency`` asks for more than the tenant allows). Requests in flight never exceed
the limit, and the rate never exceeds ``--rate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import structlog

from worker.control import InFlight
from worker.errors import QuotaSpent
from worker.keys import default_of
from worker.ratelimit import RESET_ROUNDING_S, Limits, Window, parse_concurrency_limit, parse_limits

log = structlog.get_logger("worker.pacer")

Clock = Callable[[], float]
Rand = Callable[[], float]

NAP_S = 0.25  # longest single wait, so a raised rate or an opened gate takes effect promptly
LATE_S = 0.02  # a turn taken this much later than its time (a stalled loop) is taken anew
MAX_PAUSE_S = 900.0  # a pause (Retry-After, Reset) longer than this is not waited: the job stops
PROBE_AFTER = 4  # refusals in a row, none accepted: a spent window nobody announces
PROBE_S = (0.25, 2.0)  # the pause for a probe: the first, doubling up to the second
RECOVERY_S = 10.0  # accepted traffic for a shrunk concurrency limit to climb back to its ceiling
FAST_CLIMB_S = 2.0  # back to the rate that worked within this long
SLOW_CLIMB = 0.01  # above it, this share of it per second (at least MIN_STEP)
UNSURE_CLIMB = 0.05  # from a cut above what was accepted: this share of the rate per second
MIN_STEP = 0.2  # requests/s per second
HORIZON_S = 1.0  # the rates sent and accepted are measured over the last second ...
RECENT = 8  # ... or over the last this many, when that is faster
RESIDUE = 0.9  # a 429 while pacing under this share of the accepted rate: a bucket draining


def jitter(delay: float, rand: Rand) -> float:
    """``uniform(0, min(5 s, 10 % of delay))``, so callers told the same delay part."""
    return rand() * min(5.0, 0.1 * delay)


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """The pacing knobs (requests per second); ``cut`` is the multiplicative decrease of the
    rate on a throttle and of the concurrency limit on a concurrency 429."""

    rate: float = default_of("pacing.rate")
    concurrency: int = default_of("pacing.concurrency")
    quota_share: float = default_of("pacing.quota_share")
    cut: float = 0.7
    min_rate: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.rate < math.inf and self.concurrency >= 1
                and 0 < self.quota_share <= 1 and 0 < self.cut < 1 and self.min_rate > 0):
            raise ValueError(f"invalid pacer settings: {self}")


def plan_for(config: PacerConfig, windows: tuple[Window, ...]) -> tuple[float, dict[Window, int]]:
    """What a job does with these windows: the rate it paces at (``--rate``, or less where a
    window of ``MAX_PAUSE_S`` or shorter needs it), and what it may send of each longer window
    (from its quota; an answer's Remaining may lower it)."""
    share = config.quota_share
    paces = [share * max(w.quota - 1, w.quota / 2) / w.seconds  # one request of slack a window
             for w in windows if w.seconds <= MAX_PAUSE_S]
    return min([config.rate, *paces]), {w: math.floor(share * w.quota)
                                         for w in windows if w.seconds > MAX_PAUSE_S}


def _period(held: float | None, end: float | None, sent: Sent, now: float) -> int:
    """Which period of a window an answer speaks of, against the one held (ending ``held``):
    -1 an earlier one, 0 the same, 1 a later one. Ends are estimates (``now`` + a whole-second
    Reset), each late by up to a second of rounding and the time the request was out."""
    if held is None or end is None:
        return 0
    slack = RESET_ROUNDING_S + (now - sent.at)
    return -1 if end < held - slack else 1 if end > held + slack else 0


def cancels_with(requests: int, page_size: int) -> int:
    """About how many runs a job cancels with this many requests, when it selects every run it
    lists: a DELETE each, after a listing page per ``page_size`` runs and one last page (a
    follow-up GET, when an answer was lost, is rare)."""
    return max(0, math.floor((requests - 1) * page_size / (page_size + 1)))


@dataclass(frozen=True, slots=True)
class Sent:
    """A request's turn: when it went out, and its place in the sending order (1 first)."""

    at: float
    seq: int


@dataclass(slots=True)
class Budget:
    """A longer window's share for this job: it may send ``allowed`` requests in all, until
    the window resets (``resets_at``, when an answer said)."""

    window: Window
    allowed: int
    resets_at: float | None = None


class Pacer:
    """Rate, concurrency, gate and budgets of one tenant; see the module docstring.

    Create it in the running event loop; ``clock`` must run at the loop's pace (pass
    ``loop.time`` for a virtual-time loop). One event loop only.
    """

    def __init__(self, config: PacerConfig, *, flights: InFlight | None = None,
                 clock: Clock = time.monotonic, rand: Rand = random.random) -> None:
        self._cfg, self._clock, self._rand = config, clock, rand
        self.rate = self.plan = config.rate
        self.sent = 0  # requests that had their turn
        self._next_at = -math.inf  # the next turn
        self.paused_until = -math.inf  # the gate
        self._allowances: dict[float, tuple[int, float]] = {}  # window: (sends allowed, end)
        self.budgets: dict[float, Budget] = {}
        self._ceiling = self._level = float(config.concurrency)
        self._asked = config.concurrency
        self.flights = flights or InFlight()  # the job's one count of requests in flight
        self._room = asyncio.Condition()  # the concurrency limit's permits
        self._held = 0
        self._sends: deque[float] = deque()  # send times of the last second
        self._accepts: deque[float] = deque()  # times of the answers accepted in it
        self._cut_at, self._target = -math.inf, math.inf  # the last cut, the rate that worked
        self._first_send = math.inf
        self._fast = 0.0  # the climb's step below the target (requests/s per second)
        self._probing = self._costly = self._unsure = False
        self._climbed_at = clock()
        self._refusals, self._probe = 0, 0.0
        self.stats: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()  # header values not believed, by reason
        self.min_rate_seen = self.rate

    # -- a request's slot -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Sent]:
        """A concurrency permit and this request's turn (see the module docstring).

        Raises QuotaSpent, having sent nothing, when a window's budget for this job is spent.
        """
        async with self._room:  # a permit: held while waiting for the turn and in flight
            await self._room.wait_for(lambda: self._held < self.concurrency_limit)
            self._held += 1
        try:
            sent = await self._turn()
            self.flights.begin()  # past its turn: in flight (what a stop's grace waits for)
            try:
                yield sent
            finally:
                self.flights.end()
        finally:
            async with self._room:
                self._held -= 1
                self._room.notify()

    async def _turn(self) -> Sent:
        """Wait for the gate, then reserve the next turn (``1 / rate`` after the last one) and
        wait for it: one wake-up a request, however many wait."""
        asked = self._clock()
        while True:
            now = self._clock()
            gate = self._gate(now)
            if gate > now:
                await asyncio.sleep(min(gate - now, NAP_S))
                continue
            at = max(now, self._next_at)
            self._next_at = at + 1.0 / self.rate
            if at > now:
                await asyncio.sleep(at - now)
                now = self._clock()
                if self._gate(now) > now or now - at > max(1.0 / self.rate, LATE_S):
                    continue  # the gate closed, or the loop stalled: a new turn, no burst
            self._check_budgets(now)
            self.sent += 1
            self._first_send = min(self._first_send, now)
            self._sends.append(now)
            self.stats["wait_ms"] += round((now - asked) * 1000)
            return Sent(now, self.sent)

    def _gate(self, now: float) -> float:
        """When requests may go again: the gate, or the end of a spent window's allowance."""
        return max(self.paused_until, self._window_end(now))

    def _window_end(self, now: float) -> float:
        """When a spent pacing window's allowance ends (the latest, when several are spent),
        else the past. Within ``MAX_PAUSE_S``: a Reset no window fits is not believed."""
        spent = [end for allowed, end in self._allowances.values()
                 if now < end and self.sent >= allowed]
        return max(spent) + jitter(max(spent) - now, self._rand) if spent else -math.inf

    def _check_budgets(self, now: float) -> None:
        self._renew_due(now)
        for budget in self.budgets.values():
            if self.sent >= budget.allowed:
                raise QuotaSpent(budget.window.name, budget.allowed,
                                 None if budget.resets_at is None else budget.resets_at - now)

    def _renew_due(self, now: float) -> None:
        """A window past its reset is a new one: a new share, counted from now, until the
        next reset (so an answer from the old window is told apart by its end)."""
        for seconds, budget in list(self.budgets.items()):
            if budget.resets_at is not None and now >= budget.resets_at:
                share = math.floor(self._cfg.quota_share * budget.window.quota)
                self.budgets[seconds] = Budget(budget.window, self.sent + share,
                                               budget.resets_at + seconds)

    # -- what answers say -------------------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, str], sent: Sent | None = None) -> None:
        """Learn from one answer (after every answer, errors included): its quota windows and
        concurrency limit; an answer not refused for load lets rate and concurrency climb."""
        now = self._clock()
        sent = sent or Sent(now, self.sent)
        limits = parse_limits(headers)
        if limits is not None:
            self._read(limits, sent, now)
        cap = parse_concurrency_limit(headers)
        if cap is not None:
            self._cap_concurrency(cap)
        if status != 429 and status < 500:
            self._accepted(now)

    def _read(self, limits: Limits, sent: Sent, now: float) -> None:
        for field in limits.malformed:
            self.ignored[f"{field} malformed"] += 1
        remaining, reset = limits.remaining, limits.reset
        if remaining == 0 and reset == 0:
            self.ignored["Remaining 0 with Reset 0 (window ending)"] += 1  # or a placeholder
            return
        if limits.windows:
            self._plan(limits.windows)
        if remaining is None:
            return
        if limits.nearest is not None and remaining > limits.nearest.quota:
            self.ignored["RateLimit-Remaining above the quota"] += 1
            return
        self._hold(limits, self._share_of(sent, remaining), sent, now)

    def _hold(self, limits: Limits, allowed: int, sent: Sent, now: float) -> None:
        """Hold this job to ``allowed`` sends in all, in each window the answer describes: a
        pacing window's allowance (the gate waits for its reset), a longer one's budget."""
        end = None if limits.reset is None else now + limits.reset
        if not limits.windows and limits.nearest is None:  # a window of unknown length
            if end is not None and end - now <= MAX_PAUSE_S:
                self._allow(0.0, allowed, sent, end, now)  # keyed apart from any window
            elif end is not None:
                self.ignored["RateLimit-Reset of an unnamed window over 15 minutes"] += 1
            return
        described = limits.described()
        if len(described) > 1:
            self.ignored["RateLimit-Remaining of an unnamed window (held to all it fits)"] += 1
        elif not described and end is not None:
            self.ignored["RateLimit-Reset longer than its window"] += 1
        for window in described:
            if window.seconds > MAX_PAUSE_S:
                self._lower(window, allowed, sent, end, now)
            elif end is not None:
                self._allow(window.seconds, allowed, sent, end, now)

    def _allow(self, seconds: float, allowed: int, sent: Sent, end: float, now: float) -> None:
        """A pacing window's allowance until ``end`` (the gate waits for it when spent): the
        lowest any answer from its period gave, so its share is not granted anew each time;
        an answer from an earlier period says nothing of this one. A window of 2 s or less
        (or of unknown length, resetting within 2 s) takes the latest answer: its Reset is as
        coarse as the window itself."""
        old = self._allowances.get(seconds)
        coarse = (seconds or end - now) <= 2 * RESET_ROUNDING_S
        period = 1 if old is None or coarse else _period(old[1], end, sent, now)
        if period < 0:
            self.ignored["RateLimit-Reset of an earlier window period"] += 1
            return
        if period == 0 and old is not None:
            allowed, end = min(old[0], allowed), max(old[1], end)
        self._allowances[seconds] = (allowed, end)

    def _share_of(self, sent: Sent, remaining: int) -> int:
        """The sends this job may have made in all: ``quota_share`` of what a window had left
        when ``sent`` went out."""
        return sent.seq + math.floor(self._cfg.quota_share * remaining)

    def _lower(self, window: Window, allowed: int, sent: Sent, end: float | None,
               now: float) -> None:
        """A longer window's Remaining lowers its budget (never raises it) and says its reset;
        an answer from an earlier period of the window says nothing of this one, and one from
        a later period (the window renewed before this job's clock said) starts it."""
        self._renew_due(now)
        budget = self.budgets.get(window.seconds)
        period = 1 if budget is None else _period(budget.resets_at, end, sent, now)
        if period < 0:
            self.ignored["RateLimit-Reset of an earlier window period"] += 1
        elif period > 0 or budget is None:
            self.budgets[window.seconds] = Budget(window, allowed, end)
        else:
            budget.allowed = min(budget.allowed, allowed)
            budget.resets_at = end if end is not None else budget.resets_at

    def _plan(self, windows: tuple[Window, ...]) -> None:
        """Pace by the windows of ``MAX_PAUSE_S`` or shorter; every longer one gets its budget
        (from its quota, until an answer says what it has left)."""
        plan, budgets = plan_for(self._cfg, windows)
        for window, allowed in budgets.items():  # sends in all, from the job's start
            self.budgets.setdefault(window.seconds, Budget(window, allowed))
        if plan != self.plan:
            self.plan = plan
            self._set_rate(min(self.rate, plan) if self._cut_at > -math.inf else plan)

    # -- throttles --------------------------------------------------------------------------

    def on_rate_limited(self, retry_after: float | None, sent: Sent | None = None) -> float:
        """A rate 429 (after :meth:`observe`). With ``Retry-After`` the gate closes for
        everyone until then (plus jitter); a bare one leaves it open but after ``PROBE_AFTER``
        in a row with nothing accepted (a short probe pause). Unless its request was sent
        before the last cut, it cuts the rate. Returns the seconds until the gate opens (0:
        the caller backs off this request alone); the caller stops the job past
        ``MAX_PAUSE_S``."""
        now = self._clock()
        self.stats["rate_limited"] += 1
        self._refusals += 1
        if retry_after is not None:
            self._pause(now + retry_after + jitter(retry_after, self._rand))
        accepted = self._measured(self._accepts, now, recent=True)
        if ((sent.at if sent else now) <= self._cut_at or self.rate < RESIDUE * accepted
                or self._refusals > PROBE_AFTER):
            # the same event, a bucket still draining, or a spent window being probed (its
            # refusals say when it reopens, not how fast to go then)
            self.stats["throttles_coalesced"] += 1
        else:
            self._cut(now, accepted, costly=retry_after is not None)
        if self.paused_until <= now and self._refusals >= PROBE_AFTER:
            self._probe = min(PROBE_S[1], self._probe * 2 or PROBE_S[0])
            self._pause(now + self._probe * (0.5 + 0.5 * self._rand()))
        return max(0.0, self.paused_until - now)

    def _cut(self, now: float, accepted: float, *, costly: bool) -> None:
        """A congestion event: ``cut x`` the rate really sent. The climb aims at the rate the
        limiter was accepting (one request/s under it: a sliding second can straddle two fixed
        windows), then probes slowly past it (eight times more slowly after a costly event, a
        Retry-After pause for everyone). A cut that lands above the accepted rate says that
        count is not the limiter's (a job just starting has accepted little yet): it probes on
        from the cut, a few percent a second, until the next refusal tells more."""
        sending = self._measured(self._sends, now, recent=True)
        self.stats["throttle_events"] += 1
        self._cut_at = self._climbed_at = now
        self._set_rate(self._cfg.cut * min(self.rate, sending or self.rate))
        self._unsure = accepted - 1.0 <= self.rate
        self._target = self.rate if self._unsure else accepted - 1.0
        self._fast = (self._target - self.rate) / FAST_CLIMB_S
        self._probing = self._unsure  # else set when the climb reaches the target
        self._costly = costly
        log.debug("pacer.throttled", rate=round(self.rate, 2), sending=round(sending, 2),
                  accepted=round(accepted, 2), target=round(self._target, 2), costly=costly)

    def _accepted(self, now: float) -> None:
        """An accepted answer: refusals end, and rate and concurrency climb (nothing is banked
        for time without answers: one answer earns at most a second)."""
        self._refusals, self._probe = 0, 0.0
        self._accepts.append(now)
        elapsed = min(HORIZON_S, now - self._climbed_at)
        self._climbed_at = now
        self._level = min(self._ceiling, self._level + elapsed * self._ceiling / RECOVERY_S)
        if self.rate >= self.plan or self._cut_at == -math.inf:
            return
        if self.rate < self._target:
            self._set_rate(min(self.plan, self._target, self.rate + self._fast * elapsed))
            self._probing = self.rate >= self._target
        elif self._probing:  # past what worked: probe for more, slowly
            step = (UNSURE_CLIMB * self.rate if self._unsure
                    else max(MIN_STEP, SLOW_CLIMB * self._target) / (8 if self._costly else 1))
            self._set_rate(min(self.plan, self.rate + step * elapsed))

    def on_concurrency_limited(self) -> None:
        """A concurrency 429: the limit shrinks to ``cut x`` (at least 1); the gate stays open."""
        self.stats["concurrency_limited"] += 1
        self._level = max(1.0, math.floor(self._level * self._cfg.cut))

    def _cap_concurrency(self, tenant: int) -> None:
        """The tenant's limit caps ours; asked for more than it allows, we leave it 10 %."""
        ceiling = float(tenant if self._asked <= tenant else max(1, math.floor(tenant * 0.9)))
        self._ceiling = min(float(self._asked), ceiling)
        self._level = min(self._level, self._ceiling)

    # -- helpers ----------------------------------------------------------------------------

    def _pause(self, until: float) -> None:
        if until > self.paused_until:
            self.paused_until = until
            self.stats["gate_pauses"] += 1

    def _set_rate(self, rate: float) -> None:
        """``rate``, within ``--rate`` and the plan; a cut goes no lower than ``min_rate``
        (or the plan, when that is lower: a floor never outpaces the quota or ``--rate``)."""
        self.rate = max(min(self._cfg.min_rate, self.plan), min(rate, self.plan))
        self.min_rate_seen = min(self.min_rate_seen, self.rate)

    def _measured(self, times: deque[float], now: float, *, recent: bool = False) -> float:
        """Per second over the last second (or since the first send, if that is sooner); with
        ``recent``, over the last ``RECENT`` events when that is higher: a second's count still
        reads a job that has just sped up (its listing done, its cancels starting) as the slow
        phase. Not within a second of a pause: the last events are the reopened gate's burst."""
        while times and times[0] < now - HORIZON_S:
            times.popleft()
        second = len(times) / max(min(HORIZON_S, now - self._first_send), 0.1)
        if not recent or len(times) < RECENT or now - self.paused_until < HORIZON_S:
            return second
        span = times[-1] - times[-RECENT]
        return max(second, (RECENT - 1) / span if span > 0 else second)

    def pause_left(self) -> float:
        """Seconds until the gate opens (0 when it is open)."""
        return max(0.0, self.paused_until - self._clock())

    @property
    def concurrency_limit(self) -> int:
        return max(1, int(self._level))

    def summary(self) -> dict[str, object]:
        """How pacing went, for the report."""
        return {
            "planned_rate": round(self.plan, 3), "final_rate": round(self.rate, 3),
            "min_rate": round(self.min_rate_seen, 3),
            "final_concurrency": self.concurrency_limit,
            "max_in_flight": self.flights.peak,
            "gate_pauses": self.stats["gate_pauses"], "wait_s": self.stats["wait_ms"] / 1000,
            "throttle_events": self.stats["throttle_events"],
            "throttles_coalesced": self.stats["throttles_coalesced"],
            "header_values_ignored": dict(sorted(self.ignored.items())),
            "budgets": {b.window.name: {"quota": b.window.quota, "allowed": b.allowed}
                        for b in sorted(self.budgets.values(), key=lambda b: b.window)},
        }
