"""What the RateLimit headers mean for pacing (pacing.md §5): the plan, a guard that survives
whole-second rounding, and the values not to believe.

- **The plan** is the announced policy: ``min(--rate, quota_share x the lowest quota/window in
  RateLimit-Limit)``. It is what a job paces at; nothing else here raises the rate.
- **The window's end** is learned from ``RateLimit-Reset``, which servers send in whole seconds,
  rounded up: ``Reset: r`` says the window ends within ``(r - 1, r]`` seconds of the moment the
  server answered (between our send and our receipt). :class:`WindowEnd` intersects those
  intervals over many answers, and carries them across windows of a known length, so after a
  few answers it knows the end to a few milliseconds, not to a second.
- **The allowance**: an answer to the request sent ``seq``-th saying ``Remaining: r`` allows
  requests up to the ``seq + r``-th in this window; past that the pacer waits for the window's
  end, so requests already on their way never overrun a spent window.
- **The guard** lowers the rate only when ``Remaining`` cannot last until that end at the
  planned rate (another client shares the window): to ``safety x remaining / time left``. With
  under a second left the count is rounding noise, so the guard does not act; ``Remaining: 0``
  closes the gate until the end instead.
- **Values not believed**, counted by reason for the report: fields present but malformed
  (``RateLimit-Limit: unlimited``), ``Remaining`` above the window's quota, ``Reset`` beyond the
  window's length, and ``Remaining: 0`` with ``Reset: 0``, which says the window is ending (a
  placeholder that mock servers and some gateways send on every answer), not that it is spent.
"""

from __future__ import annotations

import math
from collections import Counter

from worker.ratelimit_headers import RateLimitInfo

__all__ = ["Quota", "WindowEnd"]

_GUARD_MIN_LEFT_S = 1.0
"""With less than this left in the window, Remaining/left is rounding noise: the guard rests."""

Interval = tuple[float, float]  # (lo, hi]: the window ends after lo, at or before hi


class WindowEnd:
    """The end of the current quota window, as an interval of clock times."""

    __slots__ = ("hi", "lo")

    def __init__(self) -> None:
        self.lo, self.hi = -math.inf, -math.inf

    def known(self, now: float) -> bool:
        """True while the interval describes a window that has not ended yet."""
        return self.hi > now

    def observe(self, reset: float, sent_at: float, now: float, *, rolled: bool,
                window: float | None) -> None:
        """Learn from ``Reset: reset`` on an answer to a request sent at ``sent_at``.

        ``rolled`` says a new window began (Remaining went up); with its length ``window``
        known, the old interval moves on by whole windows and still narrows the new one.
        """
        seen = _ends_within(reset, sent_at, now)
        old = (self.lo, self.hi)
        if math.isfinite(self.hi) and (rolled or now >= self.hi) and window:
            shift = max(1, round((seen[1] - self.hi) / window)) * window
            old = (self.lo + shift, self.hi + shift)
        elif rolled or now >= self.hi:
            old = (-math.inf, math.inf)
        self.lo, self.hi = _intersect(old, seen) or seen

    def pause_end(self, retry_after: float, sent_at: float, now: float) -> float:
        """When to send again after ``Retry-After: retry_after`` (whole seconds, rounded up):
        the end of the current window if it falls inside what Retry-After allows, else
        ``now + retry_after``."""
        told = _ends_within(retry_after, sent_at, now)
        both = _intersect((self.lo, self.hi), told) if self.known(now) else None
        return both[1] if both is not None else told[1]


def _ends_within(seconds: float, sent_at: float, now: float) -> Interval:
    """When something ends that an answer said ends in ``seconds``: the server answered
    between ``sent_at`` and ``now``, and whole seconds are rounded up (``r`` means
    ``(r - 1, r]``); a value with decimals is taken as exact."""
    rounding = 1.0 if seconds == math.floor(seconds) else 0.0
    return sent_at + seconds - rounding, now + seconds


def _intersect(a: Interval, b: Interval) -> Interval | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo < hi else None


class Quota:
    """The header side of pacing for one tenant: the plan, the guard, the pause, and what was
    ignored. Fed every answer by the pacer; no clock of its own."""

    def __init__(self, rate: float, share: float, safety: float) -> None:
        self._rate, self._share, self._safety = rate, share, safety
        self.planned = rate
        self.end = WindowEnd()
        self.ignored: Counter[str] = Counter()
        self._remaining: int | None = None
        self._guard = math.inf
        self.allowance = math.inf  # the last request (by seq) the current window has room for
        self._allowance_seq = -1

    def spent(self, sent: int, now: float) -> bool:
        """True when ``sent`` requests use up the current window's allowance."""
        return sent >= self.allowance and self.end.known(now)

    def read(self, info: RateLimitInfo, sent_at: float, seq: int, now: float) -> float | None:
        """Learn from one answer's RateLimit fields (its request was sent at ``sent_at``, the
        ``seq``-th); return the clock time before which no request should be sent (the window
        is spent), or None."""
        for name in info.malformed:
            self.ignored[f"{name} malformed"] += 1
        sustained = info.sustained_rate
        if sustained is not None:
            self.planned = min(self._rate, self._share * sustained)
        remaining, reset = self._believable(info)
        if reset is not None and reset > 0:
            rolled = (remaining is not None and self._remaining is not None
                      and remaining > self._remaining)
            self.end.observe(reset, sent_at, now, rolled=rolled, window=info.window)
            if remaining is not None and (rolled or seq >= self._allowance_seq):
                self.allowance, self._allowance_seq = seq + remaining, seq
        if remaining is not None:
            self._remaining = remaining
        self._guard = self._guard_rate(remaining, now)
        if remaining == 0 and reset is not None and reset > 0 and self.end.known(now):
            return self.end.hi
        return None

    def guard(self, now: float) -> float:
        """The guard's rate ceiling (infinite when it does not bind, or its window ended)."""
        return self._guard if self.end.known(now) else math.inf

    def _believable(self, info: RateLimitInfo) -> tuple[int | None, float | None]:
        remaining, reset = info.remaining, info.reset
        if remaining is not None and info.limit is not None and remaining > info.limit:
            self.ignored["RateLimit-Remaining above the quota"] += 1
            remaining = None
        if reset is not None and info.window is not None and reset > info.window + 1:
            self.ignored["RateLimit-Reset beyond the window"] += 1
            reset = None
        if remaining == 0 and reset == 0:
            self.ignored["Remaining 0 with Reset 0 (window ending)"] += 1
            remaining = reset = None
        return remaining, reset

    def _guard_rate(self, remaining: int | None, now: float) -> float:
        if remaining is None or remaining == 0 or not self.end.known(now):
            return math.inf
        left = (max(self.end.lo, now) + self.end.hi) / 2 - now
        if left < _GUARD_MIN_LEFT_S:
            return math.inf
        budget = remaining / left
        return self._safety * budget if budget < self._safety * self.planned else math.inf
