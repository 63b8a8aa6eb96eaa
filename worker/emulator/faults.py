"""What goes wrong, on purpose: the rate and concurrency limits a tenant enforces, and the
faults a test or demo injects (5xx ratios, stalls, poisoned answers, gateway pages)."""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable

from .config import EmulatorConfig
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


HUGE_BYTES = 21 * 1024 * 1024
GATEWAY_TIMEOUT_PAGE = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center>"
    b"<h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    b"</html>\r\n")
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Zuora</title></head>"
    b"<body><h1>Service maintenance</h1><p>Please sign in again.</p></body></html>"
)


class Faults:
    """Seeded fault decisions, so the same seed and request order give the same faults."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"faults:{seed}")

    def _hit(self, ratio: float) -> bool:
        return ratio > 0 and self.rng.random() < ratio

    def should_drop(self, config: EmulatorConfig) -> bool:
        return self._hit(config.drop_ratio)

    def unavailable(self, config: EmulatorConfig) -> Reply | None:
        if not self._hit(config.fail_503_ratio):
            return None
        reply = reasons(503, 61000061, "Service temporarily unavailable, please retry")
        reply.headers["Retry-After"] = str(math.ceil(config.fault_retry_after))
        return reply

    def latency_s(self, config: EmulatorConfig) -> float:
        delay = config.latency_ms
        if config.jitter_ms > 0:
            delay += self.rng.uniform(-config.jitter_ms, config.jitter_ms)
        return max(0.0, delay) / 1000.0


@functools.cache
def huge_body() -> bytes:
    """Valid JSON bigger than 20 MB."""
    head = b'{"success":true,"response":{"content":[],"padding":"'
    return head + b"x" * HUGE_BYTES + b'"}}'


def list_fault_reply(kind: str, normal: Reply) -> Reply:
    """Replace a good list answer by the configured broken one."""
    if kind == "html":
        return Reply(200, raw=HTML_PAGE, content_type="text/html")
    if kind == "text":
        return Reply(200, raw=b"OK", content_type="text/plain")
    if kind == "no_list":
        return Reply(200, {"success": True, "response": {"total": 3}})
    if kind == "truncated":
        data = normal.payload()
        return Reply(200, raw=data[: max(1, len(data) // 2)])
    if kind == "huge":
        return Reply(200, raw=huge_body())
    raise ValueError(f"unknown list_fault {kind!r}")
