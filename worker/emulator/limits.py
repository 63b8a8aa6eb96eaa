"""The limits a tenant, or something in front of it, enforces: a rate limiter (one of several
models) and the concurrency cap.

Rate limiter models (``EmulatorConfig.limiter``), each fed the configured ``rate``:

- ``"window"``: fixed windows of ``rate_window`` seconds (any length, 1 s to 1 h), aligned to the
  limiter's creation, ``round(rate x window)`` requests each, as Zuora counts. With
  ``rate_headers`` every API answer carries ``RateLimit-Limit/-Remaining/-Reset`` (the reset in
  whole seconds, rounded up, as real servers send it); with ``rate_retry_after`` a refusal carries
  ``Retry-After`` (whole seconds, rounded up). Without both, a refusal is a bare 429.
- ``"bucket"``: nginx ``limit_req ... burst=B nodelay``: a leaky bucket draining at ``rate`` that
  admits at once while its excess stays within ``burst``, and refuses with nginx's bare 429 page
  (no RateLimit fields, no Retry-After, no JSON body).

``placeholder_headers`` adds what mock servers and some gateways send whatever the real limit:
``RateLimit-Limit: unlimited``, ``RateLimit-Remaining: 0``, ``RateLimit-Reset: 0``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from worker.ratelimit import TENANTS, Window

from .config import EmulatorConfig
from .replies import CONCURRENCY_MESSAGE, Reply, reasons

Clock = Callable[[], float]

PLACEHOLDER_HEADERS = {
    "RateLimit-Limit": "unlimited",
    "RateLimit-Remaining": "0",
    "RateLimit-Reset": "0",
}
NGINX_429_PAGE = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center>"
    b"<h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    b"</html>\r\n")


def window_limit(rate: float, window: float) -> int:
    return max(1, round(rate * window))


class RateLimiter:
    """The configured rate model; :meth:`consume` spends one request, :meth:`headers` describes
    the quota for an answer. ``clock`` is the limiter's own (monotonic) time."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self._index = 0
        self._used = 0
        self._excess = 0  # the leaky bucket's level, in thousandths of a request
        self._drained_ms: int | None = None
        self._counts: dict[tuple[float, int], int] = {}  # zuora: (window, index) -> requests

    def consume(self, config: EmulatorConfig) -> Reply | None:
        """Spend one request; the refusal Reply when the model refuses it."""
        if config.limiter == "zuora":
            return self._consume_zuora(config)
        if config.rate is None:
            return None
        if config.limiter == "bucket":
            return self._consume_bucket(config.rate, config.burst)
        return self._consume_window(config)

    def headers(self, config: EmulatorConfig) -> dict[str, str]:
        """The RateLimit fields of an API answer (none for the bucket model)."""
        if config.placeholder_headers:
            return dict(PLACEHOLDER_HEADERS)
        if config.limiter == "zuora":
            return self._zuora_headers(config)
        if config.rate is None or config.limiter != "window" or not config.rate_headers:
            return {}
        window = config.rate_window
        left = self._roll(window)
        limit = window_limit(config.rate, window)
        return {
            "RateLimit-Limit": f"{limit}, {limit};w={window:g}",
            "RateLimit-Remaining": str(max(0, limit - self._used)),
            "RateLimit-Reset": str(max(1, math.ceil(left))),
        }

    def _roll(self, window: float) -> float:
        """Move to the current window; return seconds until it ends."""
        elapsed = self._clock() - self._t0
        index = math.floor(elapsed / window)
        if index != self._index:
            self._index, self._used = index, 0
        return (index + 1) * window - elapsed

    def _consume_window(self, config: EmulatorConfig) -> Reply | None:
        assert config.rate is not None
        left = self._roll(config.rate_window)
        self._used += 1
        if self._used <= window_limit(config.rate, config.rate_window):
            return None
        wait = max(1, math.ceil(left))
        if config.rate_headers or config.rate_retry_after:
            reply = reasons(
                429, 70, f"API Rate limit exceeded for the minute, retry after {wait} seconds")
        else:
            reply = Reply(429, raw=b"Too Many Requests", content_type="text/plain")
        if config.rate_retry_after:
            reply.headers["Retry-After"] = str(wait)
        if config.rate_headers:
            reply.headers["RateLimit-Remaining"] = "0"
        reply.limited = "rate"
        return reply

    # -- Zuora: several fixed windows at once ------------------------------------------------

    def _zuora_state(self, config: EmulatorConfig) -> list[tuple[Window, int, float]]:
        """Each window of the tenant: (window, requests counted in it, seconds until it
        resets); windows are aligned to the limiter's start, pre-spent by windows_used."""
        elapsed = self._clock() - self._t0
        out = []
        for window in TENANTS[config.tenant]:
            index = math.floor(elapsed / window.seconds)
            used = self._counts.get((window.seconds, index))
            if used is None:
                used = config.windows_used.get(window.seconds, 0) if index == 0 else 0
            out.append((window, used, (index + 1) * window.seconds - elapsed))
        return out

    def _nearest(self, config: EmulatorConfig) -> tuple[Window, int, float]:
        """The window nearest exhaustion (the least share left), as Zuora's headers name it."""
        return min(self._zuora_state(config), key=lambda s: (s[0].quota - s[1]) / s[0].quota)

    def _consume_zuora(self, config: EmulatorConfig) -> Reply | None:
        """Count the request in every window (failed requests count too, as Zuora says)."""
        elapsed = self._clock() - self._t0
        spent = None
        for window, used, reset in self._zuora_state(config):
            key = (window.seconds, math.floor(elapsed / window.seconds))
            self._counts[key] = used + 1
            if used + 1 > window.quota and spent is None:
                spent = (window, reset)
        if spent is None:
            return None
        window, reset = spent
        wait = max(1, math.ceil(reset))
        name = {60.0: "minute", 3600.0: "hour", 86400.0: "day"}.get(window.seconds, "window")
        reply = reasons(429, 70, f"API Rate limit exceeded for the {name}, retry after {wait} "
                                 "seconds")
        reply.headers["Retry-After"] = str(wait)
        reply.limited = "rate"
        return reply

    def _zuora_headers(self, config: EmulatorConfig) -> dict[str, str]:
        """``ratelimit-limit: 2500, 2500;w=60, 5000;w=3600, ...`` (its first item the quota of
        the window nearest exhaustion), with that window's remaining and reset."""
        window, used, reset = self._nearest(config)
        items = ", ".join(f"{w.quota};w={w.seconds:g}" for w in TENANTS[config.tenant])
        return {"ratelimit-limit": f"{window.quota}, {items}",
                "ratelimit-remaining": str(max(0, window.quota - used)),
                "ratelimit-reset": str(max(1, math.ceil(reset)))}

    def _consume_bucket(self, rate: float, burst: int) -> Reply | None:
        """nginx ``limit_req`` (ngx_http_limit_req_lookup), in its integer units: milliseconds
        and thousandths of a request. excess = last excess - rate x elapsed + 1; refused when
        over ``burst`` (and then nothing is stored); the first request stores 0."""
        now_ms = int(self._clock() * 1000)
        if self._drained_ms is None:
            self._drained_ms, self._excess = now_ms, 0
            return None
        elapsed = abs(now_ms - self._drained_ms)
        excess = max(0, self._excess - int(rate * 1000) * elapsed // 1000 + 1000)
        if excess > burst * 1000:
            reply = Reply(429, raw=NGINX_429_PAGE, content_type="text/html")
            reply.limited = "rate"
            return reply
        self._drained_ms, self._excess = now_ms, excess
        return None


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
