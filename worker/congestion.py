"""Throttling without headers: the rate a job may send after 429s, learned as botocore's
"adaptive" retry mode does (pacing.md §1, §7), for limiters that say nothing but 429.

Written here rather than taken from a library: botocore's ``retries/adaptive.py`` is the model,
but it is synchronous, tied to botocore's client events, and its rate clock reads 0 until its
first half-second bucket closes (a throttle in a job's first moments cuts to the floor).
aiolimiter has a fixed rate and no notion of a throttle.

- :class:`RateMeter` counts the requests *sent* and the requests *accepted* (any answer the
  server did not refuse for load) over the last second.
- :class:`Cubic` is TCP CUBIC applied to a request rate (botocore's ``CubicCalculator``): after
  a throttle at rate ``w_max`` the rate drops to ``beta x w_max``, then follows
  ``scale x (t - K)^3 + w_max``: a fast concave climb back to the rate that worked, a plateau
  just below it, then a convex probe above it.
- :class:`Congestion` turns 429s into congestion events. A 429 for a request *sent before the
  last cut* was caused by the rate already abandoned: it joins that event and cuts nothing (so
  a burst of 429s cuts once, as TCP cuts once per round trip). An event sets
  ``w_max = max(min(current rate, measured sent rate), measured accepted rate)``: the cut is
  relative to what was really sent, never to the configured rate, and never below what the
  limiter was accepting (the dead end of a spent fixed window refuses everything, and must not
  drive the rate to the floor).

No clock of its own: every method takes ``now`` from the pacer.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Congestion", "Cubic", "RateMeter"]

HORIZON_S = 1.0
"""The rate meter's window."""
_MIN_SPAN_S = 0.05
"""The shortest span a rate is measured over (the first requests of a job come in a burst)."""


class RateMeter:
    """Requests sent and accepted over the last :data:`HORIZON_S` seconds."""

    __slots__ = ("_accepted", "_first", "_sent")

    def __init__(self) -> None:
        self._sent: deque[float] = deque()
        self._accepted: deque[float] = deque()
        self._first: float | None = None

    def on_sent(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._sent.append(now)

    def on_accepted(self, now: float) -> None:
        self._accepted.append(now)

    def sent_rate(self, now: float) -> float:
        """Requests sent per second over the last second (or since the first, if sooner)."""
        _prune(self._sent, now)
        if self._first is None:
            return 0.0
        span = max(min(HORIZON_S, now - self._first), _MIN_SPAN_S)
        return len(self._sent) / span

    def accepted_rate(self, now: float) -> float:
        """Requests accepted in the last second, per second (a whole second, even at start)."""
        _prune(self._accepted, now)
        return len(self._accepted) / HORIZON_S


def _prune(times: deque[float], now: float) -> None:
    edge = now - HORIZON_S
    while times and times[0] <= edge:
        times.popleft()


class Cubic:
    """The CUBIC curve of a request rate; ``scale`` is botocore's C (0.4)."""

    __slots__ = ("_beta", "_k", "_last_fail", "_scale", "w_max")

    def __init__(self, beta: float, scale: float = 0.4) -> None:
        self._beta, self._scale = beta, scale
        self.w_max = 0.0
        self._k = 0.0
        self._last_fail = 0.0

    def throttled(self, w_max: float, now: float) -> float:
        """A throttle at ``w_max``: remember it, and return the cut rate ``beta x w_max``."""
        self.w_max, self._last_fail = w_max, now
        self._k = math.cbrt(w_max * (1.0 - self._beta) / self._scale)
        return self._beta * w_max

    def rate(self, now: float) -> float:
        """The rate the curve allows at ``now`` (``beta x w_max`` right after the throttle)."""
        return self._scale * (now - self._last_fail - self._k) ** 3 + self.w_max


class Congestion:
    """Congestion events from rate 429s, and the rate ceiling they leave (see module doc)."""

    __slots__ = ("_cubic", "coalesced", "cut_at", "events", "meter")

    def __init__(self, beta: float) -> None:
        self.meter = RateMeter()
        self._cubic = Cubic(beta)
        self.cut_at = -math.inf  # when the rate was last lowered (by a cut or by the headers)
        self.events = 0
        self.coalesced = 0

    @property
    def active(self) -> bool:
        """True after the first congestion event (botocore: the bucket is off until then)."""
        return self.events > 0

    def on_throttle(self, sent_at: float, now: float, rate: float) -> float | None:
        """A rate 429 for a request sent at ``sent_at``, while pacing at ``rate``.

        Returns:
            The cut rate for a new congestion event, or None when the request was sent before
            the last cut (the same event).
        """
        if sent_at < self.cut_at:
            self.coalesced += 1
            return None
        meter = self.meter
        w_max = max(min(rate, meter.sent_rate(now)), meter.accepted_rate(now))
        self.events += 1
        self.cut_at = now
        return self._cubic.throttled(w_max, now)

    def ceiling(self, now: float) -> float:
        """The rate allowed now: the CUBIC curve, but at most twice what is really being sent
        (or the last rate that worked, if more), so idle time banks no allowance. Infinite
        before the first event."""
        if not self.active:
            return math.inf
        cap = max(2.0 * self.meter.sent_rate(now), self._cubic.w_max)
        return min(self._cubic.rate(now), cap)
