"""Throttling without headers: the rate a job may send after 429s, learned as botocore's
"adaptive" retry mode does (pacing.md §1, §7), for limiters that say nothing but 429.

Written here rather than taken from a library: botocore's ``retries/adaptive.py`` is the model,
but it is synchronous, tied to botocore's client events, and its rate clock reads 0 until its
first half-second bucket closes (a throttle in a job's first moments cuts to the floor).
aiolimiter has a fixed rate and no notion of a throttle.

- :class:`RateMeter` counts the requests *sent* and the requests *accepted* (any answer the
  server did not refuse for load) over the last second.
- :class:`Cubic` is TCP CUBIC applied to a request rate (botocore's ``CubicCalculator``): after
  a throttle the rate drops to ``beta x`` the measured rate, then follows
  ``scale x (t - K)^3 + w_max``: a fast concave climb back to ``w_max``, the last rate that
  worked, a plateau there, then a convex probe above it.
- :class:`Congestion` turns 429s into congestion events. A 429 for a request *sent before the
  last cut* was caused by the rate already abandoned: it joins that event and cuts nothing (so
  a burst of 429s cuts once, as TCP cuts once per round trip); so is one while pacing well
  below what the limiter accepted in the last second (a leaky bucket still draining the
  excess of the opening burst refuses a few more, and each must not cut again). An event
  measures ``w = max(min(current rate, sent rate), accepted rate)`` (the sent rate being the
  higher of the last second's and the last 8 sends', unless the gate was closed within that
  second) and cuts to ``beta x w``: relative to
  what was really sent, never to the configured rate, and never below what the limiter was
  accepting (the dead end of a spent fixed window refuses everything, and must not drive the
  rate to the floor). The climb aims at the rate that worked: the accepted rate when it is
  below ``w`` (a leaky bucket at saturation accepts exactly its rate), never below the cut;
  in a job's first second, when the few answers seen came in a burst, at ``w`` itself.
- After a congestion event the pacer sends evenly spaced (no burst): a burst is what a fixed
  window's edge or a bucket's depth refuses first.
- When the limiter has refused several answers in a row and accepted none (the dead end of a
  spent fixed window, which a bare 429 does not announce), :meth:`Congestion.probe_delay` gives
  a short pause for everyone, doubling while nothing gets through (0.25 s up to 2 s), so a
  blind limiter sees a probe now and then instead of every worker's retries.

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
_RECENT = 8
"""Sends that measure the current sending rate (see RateMeter.recent_rate)."""
_RESIDUE = 0.9
"""A refusal while pacing below this share of what the limiter accepted in the last second is
the residue of an earlier excess (a bucket still draining), not a new event."""
_DEAD_REFUSALS = 4
"""Refusals in a row, with nothing accepted between, that mark the limiter as refusing all."""
PROBE_FIRST_S, PROBE_MAX_S = 0.25, 2.0


class RateMeter:
    """Requests sent and accepted over the last :data:`HORIZON_S` seconds (older ones are
    dropped as new ones come, so a long job without a 429 holds one second's worth)."""

    __slots__ = ("_accepted", "_first", "_sent", "refused_in_a_row")

    def __init__(self) -> None:
        self._sent: deque[float] = deque()
        self._accepted: deque[float] = deque()
        self._first: float | None = None
        self.refused_in_a_row = 0

    def on_sent(self, now: float) -> None:
        if self._first is None:
            self._first = now
        _prune(self._sent, now)
        self._sent.append(now)

    def on_accepted(self, now: float) -> None:
        _prune(self._accepted, now)
        self._accepted.append(now)
        self.refused_in_a_row = 0

    def on_refused(self) -> None:
        self.refused_in_a_row += 1

    def sent_rate(self, now: float) -> float:
        """Requests sent per second over the last second (or since the first, if sooner)."""
        _prune(self._sent, now)
        return len(self._sent) / self._span(now)

    def recent_rate(self, now: float) -> float:
        """The rate of the last :data:`_RECENT` sends, when they fall within the last second:
        what is being sent *now*, when the job has just sped up (a listing done, cancels
        starting), which a whole second's count still reads as the slower phase before."""
        sent = self._sent
        _prune(sent, now)
        if len(sent) < _RECENT:
            return self.sent_rate(now)
        span = sent[-1] - sent[-_RECENT]
        return (_RECENT - 1) / span if span > 0 else math.inf

    def accepted_rate(self, now: float) -> float:
        """Requests accepted per second, over the same span as :meth:`sent_rate`."""
        _prune(self._accepted, now)
        return len(self._accepted) / self._span(now)

    def settled(self, now: float) -> bool:
        """True once a whole second has been measured (before that, rates come from a burst)."""
        return self._first is not None and now - self._first >= HORIZON_S

    def _span(self, now: float) -> float:
        first = now if self._first is None else self._first
        return max(min(HORIZON_S, now - first), _MIN_SPAN_S)


def _prune(times: deque[float], now: float) -> None:
    edge = now - HORIZON_S
    while times and times[0] <= edge:
        times.popleft()


class Cubic:
    """The CUBIC curve of a request rate; ``scale`` is botocore's C (0.4)."""

    __slots__ = ("_base_scale", "_beta", "_k", "_last_fail", "_scale", "w_max")

    def __init__(self, beta: float, scale: float = 0.4) -> None:
        self._beta, self._base_scale = beta, scale
        self._scale = scale  # this curve's: the base, or 8 times flatter after a costly throttle
        self.w_max = 0.0
        self._k = 0.0
        self._last_fail = 0.0

    def throttled(self, measured: float, worked: float, now: float, *,
                  costly: bool = False) -> float:
        """A throttle while sending at ``measured``: return the cut rate ``beta x measured``;
        the curve climbs from there back to ``worked`` (at least the cut rate). ``costly``
        (the refusal paused everyone) makes this curve 8 times flatter: slower back, and far
        slower past ``worked``."""
        start = self._beta * measured
        self._scale = self._base_scale / 8 if costly else self._base_scale
        self.w_max, self._last_fail = max(start, worked), now
        self._k = math.cbrt((self.w_max - start) / self._scale)
        return start

    def rate(self, now: float) -> float:
        """The rate the curve allows at ``now`` (the cut rate right after the throttle)."""
        return self._scale * (now - self._last_fail - self._k) ** 3 + self.w_max


class Congestion:
    """Congestion events from rate 429s, and the rate ceiling they leave (see module doc)."""

    __slots__ = ("_cubic", "_probe", "coalesced", "cut_at", "events", "meter")

    def __init__(self, beta: float) -> None:
        self.meter = RateMeter()
        self._cubic = Cubic(beta)
        self._probe = PROBE_FIRST_S
        self.cut_at = -math.inf  # when the rate was last lowered (by a cut or by the headers)
        self.events = 0
        self.coalesced = 0

    @property
    def active(self) -> bool:
        """True after the first congestion event (botocore: the bucket is off until then)."""
        return self.events > 0

    def on_throttle(self, sent_at: float, now: float, rate: float, *,
                    costly: bool = False, paused_at: float = -math.inf) -> float | None:
        """A rate 429 for a request sent at ``sent_at``, while pacing at ``rate``; ``costly``
        when it closed the gate for everyone (the next curve probes far more gently);
        ``paused_at`` is when the gate last opened after a pause (within the last second, the
        last sends are the burst of a reopened gate, and the second's count is the pace).

        Returns:
            The cut rate for a new congestion event, or None when it is not one: the request
            was sent before the last cut, or the job is pacing well below what the limiter
            accepted (the residue of the last event).
        """
        meter = self.meter
        meter.on_refused()
        accepted = meter.accepted_rate(now)
        if sent_at < self.cut_at or rate < _RESIDUE * accepted:
            self.coalesced += 1
            return None
        sending = meter.sent_rate(now)
        if paused_at <= now - HORIZON_S:
            sending = max(sending, meter.recent_rate(now))
        measured = max(min(rate, sending), accepted)
        self.events += 1
        self.cut_at = now
        # a sliding second can straddle two fixed windows and count one more than either allows
        worked = min(measured, accepted - 1 / HORIZON_S) if meter.settled(now) else measured
        return self._cubic.throttled(measured, worked, now, costly=costly)

    def ceiling(self, now: float) -> float:
        """The rate allowed now: the CUBIC curve, but at most twice what is really being sent
        (or the last rate that worked, if more), so idle time banks no allowance. Infinite
        before the first event."""
        if not self.active:
            return math.inf
        cap = max(2.0 * self.meter.sent_rate(now), self._cubic.w_max)
        return min(self._cubic.rate(now), cap)

    def on_accepted(self, now: float) -> None:
        """An answer the server did not refuse: count it, and probing starts short again."""
        self.meter.on_accepted(now)
        self._probe = PROBE_FIRST_S

    def probe_delay(self, now: float) -> float | None:
        """How long everyone should pause when the limiter refuses everything (doubling each
        time, until something is accepted); None while anything gets through."""
        if self.meter.refused_in_a_row < _DEAD_REFUSALS:
            return None
        delay, self._probe = self._probe, min(PROBE_MAX_S, self._probe * 2)
        return delay
