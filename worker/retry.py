"""Retries, in one place: the one retry loop of API calls, the job's retry budget, backoff, and
the small fixed loop of the token request and the webhook.

An API call (``worker.client``) is retried by :meth:`ApiRetry.call`, which reads top to bottom:
send; on a definitive answer return it; on a transient failure :meth:`ApiRetry.next_wait`
decides whether to try again and after how long, and pays for it from the job's budget.

- Retried: 429 (bounded by time, ``throttle_window``: refused for longer stops the job, as a
  throttle, not an unreachable API) and transient failures (5xx, timeouts, dropped
  connections; bounded by ``max_attempts``), honouring ``Retry-After``.
- A rate 429 the pacer answered by closing its gate (the server said for how long) waits at the
  gate with every other request; a bare one backs off its own request, with full jitter from
  ``throttle_base`` doubling to ``throttle_cap``. A ``Retry-After`` longer than ``max_pause``
  (a 429's or a 503's) stops the job instead.
- A retry the job's budget cannot pay for stops the job (a circuit breaker, as botocore's);
  a job that is stopping retries nothing.
- A call whose retries end on a transient failure raises :class:`ApiUnreachable`, or
  Interrupted when the job's stop ended them (the stop is the reason, not the API).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from worker.control import JobControl
from worker.errors import ApiUnreachable, Interrupted, Kind, RateLimited, TransientError
from worker.http import Response
from worker.keys import default_of
from worker.pacer import MAX_PAUSE_S, Pacer, Sent, jitter

log = structlog.get_logger("worker.retry")

Rand = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RetryKind = Literal["transient", "throttle", "timeout"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff and bounds. Tests use ``RetryPolicy(base=0, cap=0)`` for instant retries."""

    max_attempts: int = default_of("pacing.max_attempts")
    base: float = 0.25
    cap: float = 10.0
    throttle_base: float = 0.5  # a bare rate 429: this request's backoff (full jitter) ...
    throttle_cap: float = 10.0  # ... doubling up to this
    throttle_window: float = MAX_PAUSE_S  # throttle retries are bounded by time, not count
    max_pause: float = MAX_PAUSE_S  # a Retry-After longer than this stops the job instead


class RetryBudget:
    """Job-level retry quota, as botocore's ``RetryQuotaChecker``: each retry takes tokens by
    kind, a first-try success gives one back (up to ``capacity``). One event loop only."""

    COSTS: dict[RetryKind, int] = {"transient": 10, "throttle": 2, "timeout": 10}

    def __init__(self, capacity: int = default_of("pacing.retry_budget")) -> None:
        if capacity < 0:
            raise ValueError("the retry budget's capacity must be >= 0")
        self.capacity = self.available = capacity

    def try_acquire(self, kind: RetryKind) -> bool:
        """Pay for one retry of ``kind``; False (and nothing taken) when it cannot be paid."""
        cost = self.COSTS[kind]
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def on_success(self, first_try: bool) -> None:
        if first_try:
            self.available = min(self.capacity, self.available + 1)


def backoff(attempt: int, *, base: float, cap: float, rand: Rand) -> float:
    """Full-jitter exponential backoff: ``rand() * min(cap, base * 2**(attempt-1))`` (the cap
    inside the random factor, botocore #3178); an ``attempt`` below 1 counts as 1."""
    return rand() * min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 64))


def retry_delay(attempt: int, header_delay: float | None, *, base: float, cap: float,
                rand: Rand) -> float:
    """The backoff, or the header's delay when longer (plus jitter, so callers told the same
    Retry-After do not all come back together)."""
    fallback = backoff(attempt, base=base, cap=cap, rand=rand)
    if header_delay is None:
        return fallback
    header_delay = max(0.0, header_delay)
    return max(header_delay, fallback) + jitter(header_delay, rand)


def few_times(attempts: int, wait: Callable[[int], float],
              sleep: Sleep = asyncio.sleep) -> AsyncRetrying:
    """The small fixed loop of calls outside the job's pacing (the token, the webhook): a
    TransientError is tried ``attempts`` times in all, ``wait(n)`` apart; the last re-raised."""
    return AsyncRetrying(retry=retry_if_exception_type(TransientError),
                         stop=stop_after_attempt(attempts),
                         wait=lambda rs: wait(rs.attempt_number), sleep=sleep, reraise=True)


def gave_up(what: str, attempts: int, exc: TransientError) -> ApiUnreachable:
    """The error of a call whose retries ended on a transient failure."""
    return ApiUnreachable(f"{what} failed after {attempts} attempt(s): {exc}", status=exc.status,
                          code=exc.code)


@dataclass
class CallState:
    """Per logical request: attempts sent, and how the retries went."""

    attempts: int = 0
    transient: int = 0
    unanswered: int = 0  # attempts that went out and got no definitive answer (lost, 5xx)
    throttled: int = 0  # rate 429s that backed off this request alone
    sent: Sent | None = None  # the last attempt's turn in the pacer
    refreshed: bool = False
    started: float = 0.0


@dataclass(frozen=True, slots=True)
class ApiRetry:
    """The retry policy of API calls for one job: shares the pacer, the budget and the stop."""

    policy: RetryPolicy
    budget: RetryBudget
    pacer: Pacer
    control: JobControl
    sleep: Sleep = asyncio.sleep
    rand: Rand = random.random

    async def call(self, attempt: Callable[[], Awaitable[Response]], st: CallState,
                   what: str) -> Response:
        """``attempt()`` until it gives a definitive answer (see the module docstring)."""
        st.started = asyncio.get_running_loop().time()
        while True:
            try:
                resp = await attempt()
            except TransientError as exc:
                wait = self.next_wait(exc, st)
                if wait is None:
                    if self.control.is_stopping():  # the stop ended the retries: its reason
                        raise Interrupted(self.control.stop_reason or "stopping") from exc
                    raise gave_up(what, st.attempts, exc) from exc
                log.info("retry.scheduled", call=what, attempt=st.attempts,
                         wait_s=round(wait, 3), caused_by=str(exc)[:200])
                await self.sleep(wait)
                continue
            self.budget.on_success(first_try=st.attempts == 1)
            return resp

    def next_wait(self, exc: TransientError, st: CallState) -> float | None:
        """After a failed attempt: the wait before the next one, or None to give up."""
        if self.control.is_stopping():
            return None
        if exc.retry_after is not None and exc.retry_after > self.policy.max_pause:
            self._too_long(exc.retry_after)  # a 429's or a 503's: the server's own figure
            return None
        if isinstance(exc, RateLimited):
            elapsed = asyncio.get_running_loop().time() - st.started
            if elapsed > self.policy.throttle_window:  # refused for longer than a job waits
                self.control.request_stop(
                    f"rate limited for {elapsed:.0f}s: the API kept refusing for longer than "
                    f"the {self.policy.throttle_window:.0f}s a call waits", Kind.INTERRUPTED)
                return None
            wait = self._throttled(exc, st)
            kind: RetryKind = "throttle"
        else:
            wait = None if st.transient >= self.policy.max_attempts else retry_delay(
                st.transient, exc.retry_after, base=self.policy.base, cap=self.policy.cap,
                rand=self.rand)
            kind = "timeout" if exc.code == "timeout" else "transient"
        if wait is None:
            return None
        if not self.budget.try_acquire(kind):
            self.control.request_stop("retry budget exhausted: the API keeps failing",
                                      Kind.INTERRUPTED)
            return None
        self.control.counters.retries += 1
        return wait

    def _too_long(self, wait: float) -> None:
        """The API asked for a longer wait than a job waits: the job stops (exit 5)."""
        self.control.request_stop(
            f"the API asked to wait {wait:.0f}s (Retry-After), longer than the "
            f"{self.policy.max_pause:.0f}s a job waits", Kind.INTERRUPTED)

    def _throttled(self, exc: RateLimited, st: CallState) -> float | None:
        """A 429 (the pacer already heard it): the gate is the wait when it is closed; a bare
        rate 429 backs this request off alone; a concurrency one waits out its Retry-After."""
        if exc.limit != "rate":
            delay = exc.retry_after if exc.retry_after is not None else 1.0
            return delay + self.rand() * min(1.0, delay * 0.1)
        if self.pacer.pause_left() > 0:
            return 0.0  # the gate holds every request, this one included
        st.throttled += 1
        return backoff(st.throttled, base=self.policy.throttle_base,
                       cap=self.policy.throttle_cap, rand=self.rand)
