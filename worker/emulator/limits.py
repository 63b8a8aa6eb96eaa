"""Rate quota (fixed windows) and concurrency cap, with Zuora's headers and 429s."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .replies import CONCURRENCY_MESSAGE, Reply, reasons


def window_limit(rate: float, window: float) -> int:
    return max(1, round(rate * window))


class RateLimiter:
    """Fixed windows aligned to the limiter's creation; every counted request spends one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self._index = 0
        self._used = 0

    def _roll(self, window: float) -> float:
        """Move to the current window; return seconds until it ends."""
        elapsed = self._clock() - self._t0
        index = math.floor(elapsed / window)
        if index != self._index:
            self._index, self._used = index, 0
        return (index + 1) * window - elapsed

    def consume(self, rate: float | None, window: float) -> Reply | None:
        """Spend one request; a 429 Reply when the window's quota is gone."""
        if rate is None:
            return None
        left = self._roll(window)
        limit = window_limit(rate, window)
        self._used += 1
        if self._used <= limit:
            return None
        wait = max(1, math.ceil(left))
        reply = reasons(
            429, 70, f"API Rate limit exceeded for the minute, retry after {wait} seconds"
        )
        reply.headers.update({"Retry-After": str(wait), "RateLimit-Remaining": "0"})
        reply.limited = "rate"
        return reply

    def headers(self, rate: float | None, window: float) -> dict[str, str]:
        if rate is None:
            return {}
        left = self._roll(window)
        limit = window_limit(rate, window)
        win = f"{window:g}"
        return {
            "RateLimit-Limit": f"{limit}, {limit};w={win}",
            "RateLimit-Remaining": str(max(0, limit - self._used)),
            "RateLimit-Reset": str(max(1, math.ceil(left))),
        }


class ConcurrencyGate:
    """Counts API requests in flight; admits at most `cap` of them."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0

    def enter(self, cap: int | None, retry_after: float) -> Reply | None:
        """Admit the request (caller must leave()) or return the 429 Reply."""
        if cap is not None and self.in_flight >= cap:
            reply = reasons(429, 50000070, CONCURRENCY_MESSAGE)
            reply.headers.update(
                {"Retry-After": str(math.ceil(retry_after)), "Concurrency-Limit-Remaining": "0"}
            )
            reply.limited = "concurrency"
            return reply
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return None

    def leave(self) -> None:
        self.in_flight -= 1

    def headers(self, cap: int | None) -> dict[str, str]:
        if cap is None:
            return {}
        return {
            "Concurrency-Limit-Type": "Default",
            "Concurrency-Limit-Limit": str(cap),
            "Concurrency-Limit-Remaining": str(max(0, cap - self.in_flight)),
        }
