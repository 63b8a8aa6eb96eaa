"""Retries, in one place: the tenacity policy of API calls, the job's retry budget, backoff.

Every API call (``worker.client``), the token request (``worker.auth``) and the webhook
(``worker.notify``) retry through tenacity loops built here. For an API call, what happens after
a failed attempt is decided once, by :meth:`ApiRetry.decide` (tenacity's ``after`` hook): the
delay, whether to stop, and the side effects that go with it (spending the job's retry budget,
cutting the pacer's rate, stopping the job). tenacity's ``wait`` and ``stop`` callbacks only
read that decision, so they are pure.

What is retried: 429 (bounded by time, ``throttle_window``), and transient failures (5xx,
timeouts, dropped connections; bounded by ``max_attempts``), honouring ``Retry-After``. A rate
429 that closes the pacer's gate (the server said for how long) waits at the gate with every
other request; a bare one (no Retry-After, no spent window) backs off that request alone, with
full jitter from ``throttle_base`` doubling to ``throttle_cap``. A call
whose retries end on a transient failure raises :class:`ApiUnreachable` (:func:`gave_up`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

from worker.control import JobControl
from worker.errors import ApiUnreachable, Kind, RateLimited, TransientError
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
    """Job-level retry quota, as botocore's ``RetryQuotaChecker`` (a circuit breaker).

    Each retry takes tokens by kind; a first-try success refunds ``refund`` (up to
    ``capacity``). When a retry cannot be paid for, the caller stops the job cleanly instead of
    adding load during an outage. Single event loop only (not thread-safe).
    """

    def __init__(
        self,
        capacity: int = default_of("pacing.retry_budget"),
        retry_cost: int = 10,
        throttle_cost: int = 2,
        timeout_cost: int = 10,
        refund: int = 1,
    ) -> None:
        if capacity < 0 or min(retry_cost, throttle_cost, timeout_cost, refund) < 0:
            raise ValueError("retry budget capacity and costs must be >= 0")
        self._capacity = capacity
        self._available = capacity
        self._costs: dict[RetryKind, int] = {
            "transient": retry_cost,
            "throttle": throttle_cost,
            "timeout": timeout_cost,
        }
        self._refund = refund

    @property
    def available(self) -> int:
        """Tokens left."""
        return self._available

    def try_acquire(self, kind: RetryKind) -> bool:
        """Pay for one retry of ``kind``; False (and nothing taken) when the budget cannot pay."""
        cost = self._costs[kind]
        if cost > self._available:
            return False
        self._available -= cost
        return True

    def on_success(self, first_try: bool) -> None:
        """Record a success; a first-try success refunds ``refund`` tokens, capped at capacity."""
        if first_try:
            self._available = min(self._capacity, self._available + self._refund)


def backoff(attempt: int, *, base: float, cap: float, rand: Rand) -> float:
    """Full-jitter exponential backoff: ``rand() * min(cap, base * 2**(attempt-1))``.

    Args:
        attempt: 1 for the first retry; values below 1 count as 1.
        base, cap: seconds, >= 0.
        rand: returns a float in [0, 1).

    Returns:
        A delay in ``[0, cap]`` (the cap sits inside the random factor, botocore #3178).
    """
    exponent = min(max(attempt, 1) - 1, 64)  # 2**64 x any sane base is past any cap
    return rand() * min(cap, base * 2.0**exponent)


def retry_delay(
    attempt: int, header_delay: float | None, *, base: float, cap: float, rand: Rand
) -> float:
    """Delay before retry ``attempt``: the header's delay wins when longer than the backoff.

    Returns:
        ``backoff(...)`` without a header delay; otherwise ``max(header_delay, backoff(...))``
        plus jitter ``uniform(0, min(5 s, 10 % of header_delay))`` so callers told the same
        Retry-After do not return together. A negative header delay counts as 0.
    """
    fallback = backoff(attempt, base=base, cap=cap, rand=rand)
    if header_delay is None:
        return fallback
    header_delay = max(0.0, header_delay)
    return max(header_delay, fallback) + jitter(header_delay, rand)


def few_times(attempts: int, wait: Callable[[int], float],
              sleep: Sleep = asyncio.sleep) -> AsyncRetrying:
    """A small fixed loop for calls outside the job's pacing (token, webhook): retry a
    TransientError up to ``attempts`` in all, waiting ``wait(n)`` before attempt ``n + 1``;
    the last error is re-raised."""
    return AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(attempts),
        wait=lambda rs: wait(rs.attempt_number),
        sleep=sleep,
        reraise=True,
    )


def gave_up(what: str, attempts: int, exc: TransientError) -> ApiUnreachable:
    """The error of a call whose retries ended (exhausted, or the job is stopping) on a
    transient failure: the API could not be reached, or kept failing."""
    return ApiUnreachable(f"{what} failed after {attempts} attempt(s): {exc}", status=exc.status,
                          code=exc.code)


@dataclass
class CallState:
    """Per logical request: attempts sent, and how the retries went."""

    attempts: int = 0
    transient: int = 0
    unanswered: int = 0  # attempts that went out and got no definitive answer (lost, 5xx)
    throttled: int = 0  # rate 429s that backed off this request alone
    sent: Sent | None = None  # the last attempt's entry into the pacer's slot
    refreshed: bool = False
    started: float = 0.0
    delay: float = 0.0  # decided after the last failed attempt: the wait before the next
    give_up: bool = False  # decided after the last failed attempt: no further attempt


@dataclass(frozen=True, slots=True)
class ApiRetry:
    """The retry policy of API calls for one job: shares the pacer, the budget and the stop."""

    policy: RetryPolicy
    budget: RetryBudget
    pacer: Pacer
    control: JobControl
    sleep: Sleep = asyncio.sleep
    rand: Rand = random.random

    def retrying(self, st: CallState, method: str, path: str) -> AsyncRetrying:
        """The tenacity loop of one call: every attempt of it goes through this (one path)."""
        return AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            after=lambda rs: self.decide(rs, st),
            wait=lambda rs: st.delay,
            stop=lambda rs: st.give_up,
            sleep=self.sleep,
            before_sleep=lambda rs: _log_retry(rs, method, path),
            reraise=True,
        )

    def decide(self, rs: RetryCallState, st: CallState) -> None:
        """After a failed attempt: set ``st.delay`` and ``st.give_up``, and act on the job."""
        exc = rs.outcome.exception() if rs.outcome else None
        assert isinstance(exc, TransientError)
        st.delay, st.give_up = self._delay(exc, st), True
        if self.control.is_stopping() or self._exhausted(exc, st):
            return
        if not self.budget.try_acquire(_budget_kind(exc)):
            self.control.request_stop("retry budget exhausted: the API keeps failing",
                                      Kind.INTERRUPTED)
            return
        self.control.counters.retries += 1
        st.give_up = False

    def _exhausted(self, exc: TransientError, st: CallState) -> bool:
        if isinstance(exc, RateLimited):
            return asyncio.get_running_loop().time() - st.started > self.policy.throttle_window
        return st.transient >= self.policy.max_attempts

    def _delay(self, exc: TransientError, st: CallState) -> float:
        """The wait before the next attempt. A rate 429 is the pacer's to judge: when it closes
        the gate, the gate is the wait; a bare one backs off this request alone. A concurrency
        429 shrinks the pacer's limit and waits out its Retry-After."""
        if isinstance(exc, RateLimited):
            if exc.limit == "rate":
                pause = self.pacer.on_rate_limited(exc.retry_after, st.sent)
                if pause > self.policy.max_pause:
                    self.control.request_stop(
                        f"rate quota exhausted for {pause:.0f}s (Retry-After)", Kind.INTERRUPTED)
                if pause > 0:
                    return 0.0  # the gate holds every request, this one included
                st.throttled += 1
                return backoff(st.throttled, base=self.policy.throttle_base,
                               cap=self.policy.throttle_cap, rand=self.rand)
            self.pacer.on_concurrency_limited()
            delay = exc.retry_after if exc.retry_after is not None else 1.0
            return delay + self.rand() * min(1.0, delay * 0.1)
        return retry_delay(max(st.transient, 1), exc.retry_after, base=self.policy.base,
                           cap=self.policy.cap, rand=self.rand)


def _budget_kind(exc: TransientError) -> RetryKind:
    if isinstance(exc, RateLimited):
        return "throttle"
    return "timeout" if exc.code == "timeout" else "transient"


def _log_retry(rs: RetryCallState, method: str, path: str) -> None:
    exc = rs.outcome.exception() if rs.outcome else None
    log.info("retry.scheduled", method=method, path=path, attempt=rs.attempt_number,
             wait_s=round(rs.upcoming_sleep, 3), caused_by=str(exc)[:200])
