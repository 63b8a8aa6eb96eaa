"""The API client: every request goes pacer -> auth -> HTTP -> classify, with tenacity retries.

Only transient failures are retried (429, 500/502/503/504, timeouts, dropped connections),
honouring Retry-After; a 401 triggers one shared token refresh; 4xx answers are returned to
the caller, who decides what they mean for a run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from worker.auth import Auth
from worker.control import JobControl
from worker.errors import AuthError, Interrupted, RateLimited, TransientError
from worker.http import Response, Transport
from worker.logs import debug_enabled
from worker.models import describe, reason_codes
from worker.pacer import Pacer, RetryBudget, RetryKind, retry_delay
from worker.ratelimit_headers import parse_retry_after

log = structlog.get_logger("worker.client")

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_CATEGORIES = frozenset({"50", "60", "61", "70", "99"})  # zuora-api.md §3.3
CONCURRENCY_CODE = "50000070"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff and bounds. Tests use ``RetryPolicy(base=0, cap=0)`` for instant retries."""

    max_attempts: int = 6
    base: float = 0.25
    cap: float = 10.0
    throttle_window: float = 900.0  # throttle retries are bounded by time, not count
    max_pause: float = 900.0  # a Retry-After longer than this stops the job instead


class _Reauth(Exception):
    """A 401 was answered and the token refreshed: try again at once."""


@dataclass(slots=True)
class _Call:
    """One logical request, as every attempt sends it."""

    method: str
    path: str
    url: str
    json_body: Any
    params: list[tuple[str, str]] | None


@dataclass
class CallState:
    """Per logical request: attempts sent, and how the retries went."""

    attempts: int = 0
    transient: int = 0
    refreshed: bool = False
    started: float = 0.0


class ApiClient:
    """A paced, retried client for the Reporting API of one target."""

    def __init__(self, api_root: str, transport: Transport, auth: Auth, pacer: Pacer,
                 budget: RetryBudget, control: JobControl, policy: RetryPolicy, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.api_root = api_root
        self.control = control
        self._transport, self._auth, self._pacer = transport, auth, pacer
        self._budget, self._policy = budget, policy
        self._sleep, self._rand = sleep, rand

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: list[tuple[str, str]] | None = None,
                      state: CallState | None = None) -> Response:
        """Send one logical request with retries; return the first definitive answer.

        Raises TransientError when retries are exhausted, AuthError on a 401 that survives a
        token refresh, Interrupted when the job is stopping, UnusableResponse (a redirect, an
        answer over a hard limit) at once.
        """
        st = state or CallState()
        st.started = asyncio.get_running_loop().time()
        call = _Call(method, path, self.api_root + path, json_body, params)
        resp = await self._retrying(call, st)
        self._budget.on_success(first_try=st.attempts == 1)
        return resp

    async def _retrying(self, call: _Call, st: CallState) -> Response:
        """Every attempt of one call goes through one tenacity loop (the only retry path)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, TransientError | _Reauth)),
            stop=lambda rs: self._should_stop(rs, st),
            wait=lambda rs: self._wait(rs, st),
            sleep=self._sleep,
            before_sleep=lambda rs: self._before_sleep(rs, call.method, call.path),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                resp = await self._attempt(call, st)
        return resp

    async def _attempt(self, call: _Call, st: CallState) -> Response:
        """One attempt: pacer slot -> HTTP -> observe -> classify; raises to retry."""
        self._raise_if_stopping()
        resp, auth_headers, headers = await self._send(call, st)
        self._pacer.observe(resp.status, resp.headers)
        self.control.counters.count_status(resp.status, resp.elapsed)
        if debug_enabled():
            log.debug("http.response", method=call.method, url=call.url, status=resp.status,
                      track_id=headers["Zuora-Track-Id"],
                      elapsed_ms=round(resp.elapsed * 1000, 1),
                      request_id=resp.header("Zuora-Request-Id"))
        if resp.status == 401:
            await self._reauth(st, auth_headers)
        return self._classify(resp, st)

    async def _send(self, call: _Call, st: CallState
                    ) -> tuple[Response, dict[str, str], dict[str, str]]:
        """Send inside a pacer slot. Waiting for the slot ends at the job deadline (which then
        stops the job), so a request queued behind a closed pause gate never waits past it.
        Returns the response, the auth headers used and all headers sent."""
        try:
            async with self._pacer.slot(self.control.deadline):
                self._raise_if_stopping()  # stopped while we waited for a slot
                # Take the token only now: one taken before a long wait for a slot (a rate
                # pause) may have expired by the time the request goes out.
                auth_headers = await self._auth.headers()
                headers = {**auth_headers, "Zuora-Track-Id": self.control.track_id()}
                st.attempts += 1
                self.control.begin_send()
                try:
                    resp = await self._transport.send(call.method, call.url, headers=headers,
                                                      json_body=call.json_body,
                                                      params=call.params)
                finally:
                    self.control.end_send()
                return resp, auth_headers, headers
        except TransientError:
            self.control.counters.network_errors += 1
            st.transient += 1
            raise
        except TimeoutError:  # only the slot wait raises it: Transport translates its own
            self.control.request_stop("deadline reached", 5)
            raise Interrupted("deadline reached") from None

    def _raise_if_stopping(self) -> None:
        if self.control.is_stopping():
            raise Interrupted(self.control.stop_reason or "stopping")

    async def _reauth(self, st: CallState, auth_headers: dict[str, str]) -> None:
        """A 401: refresh the token once (shared by all callers) and try again at once."""
        if st.refreshed:
            raise AuthError("the API answered 401 again after a token refresh: the "
                            "credentials or token are not accepted for Reporting", status=401)
        st.refreshed = True
        await self._auth.refresh(auth_headers)
        raise _Reauth()

    def _classify(self, resp: Response, st: CallState) -> Response:
        """Raise for a 429 or a retryable failure; return every other answer. Not a coroutine:
        it runs once per request and awaits nothing."""
        if resp.status == 429:
            raise self._throttled(resp)
        if resp.status in RETRYABLE_STATUSES or _retryable_failure(resp):
            st.transient += 1
            raise TransientError(f"HTTP {resp.status}: {describe(resp)}",
                                 status=resp.status,
                                 retry_after=parse_retry_after(resp.header("Retry-After"),
                                                               time.time()))
        return resp

    def _throttled(self, resp: Response) -> RateLimited:
        codes = reason_codes(resp.body)
        retry_after = parse_retry_after(resp.header("Retry-After"), time.time())
        reset = _float(resp.header("RateLimit-Reset"))
        is_conc = CONCURRENCY_CODE in codes or (
            resp.header("Concurrency-Limit-Remaining") == "0"
            and resp.header("RateLimit-Remaining") != "0" and "70" not in codes)
        kind = "concurrency" if is_conc else "rate"
        self.control.counters.limited[kind] += 1
        return RateLimited(f"HTTP 429 ({kind} limit): {describe(resp)}", kind=kind,
                           retry_after=retry_after, reset=reset)

    def _should_stop(self, rs: RetryCallState, st: CallState) -> bool:
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, _Reauth):
            return False
        if self.control.is_stopping():
            return True
        kind: RetryKind
        if isinstance(exc, RateLimited):
            elapsed = asyncio.get_running_loop().time() - st.started
            if elapsed > self._policy.throttle_window:
                return True
            kind = "throttle"
        else:
            if st.transient >= self._policy.max_attempts:
                return True
            kind = "timeout" if isinstance(exc, TransientError) and exc.code == "timeout" \
                else "transient"
        if self._past_deadline(rs, exc):
            return True
        if not self._budget.try_acquire(kind):
            self.control.request_stop("retry budget exhausted: the API keeps failing", 5)
            return True
        self.control.counters.retries += 1
        return False

    def _past_deadline(self, rs: RetryCallState, exc: BaseException | None) -> bool:
        """True when the next attempt could not start before the job deadline.

        A closed pause gate (rate 429) holds every request, so the job stops now; a longer
        Retry-After or backoff of this request alone fails only this request.
        """
        left = self.control.time_left()
        if left is None:
            return False
        if isinstance(exc, RateLimited) and exc.kind == "rate":
            gate = self._pacer.paused_until - asyncio.get_running_loop().time()
            if gate >= left:
                self.control.request_stop(
                    f"deadline reached: the rate quota reopens in {gate:.0f}s", 5)
                return True
        return (rs.upcoming_sleep or 0.0) >= left

    def _wait(self, rs: RetryCallState, st: CallState) -> float:
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, _Reauth):
            return 0.0
        if isinstance(exc, RateLimited):
            if exc.kind == "rate":
                pause = self._pacer.on_rate_limited(exc.retry_after, exc.reset)
                if pause > self._policy.max_pause:
                    self.control.request_stop(
                        f"rate quota exhausted for {pause:.0f}s (Retry-After)", 5)
                return 0.0  # the pacer's gate holds every request, this one included
            self._pacer.on_concurrency_limited()
            delay = exc.retry_after if exc.retry_after is not None else 1.0
            return delay + self._rand() * min(1.0, delay * 0.1)
        header = exc.retry_after if isinstance(exc, TransientError) else None
        return retry_delay(max(st.transient, 1), header, base=self._policy.base,
                           cap=self._policy.cap, rand=self._rand)

    def _before_sleep(self, rs: RetryCallState, method: str, path: str) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, _Reauth):
            log.info("auth.refreshed", method=method, path=path)
            return
        log.info("retry.scheduled", method=method, path=path, attempt=rs.attempt_number,
                 wait_s=round(rs.upcoming_sleep, 3), caused_by=str(exc)[:200])


def _retryable_failure(resp: Response) -> bool:
    """A 2xx/4xx body with success:false and a retryable Zuora category (lock, temporary...)."""
    if not isinstance(resp.body, Mapping) or resp.body.get("success") is not False:
        return False
    codes = [c for c in reason_codes(resp.body) if c.isdigit() and len(c) == 8]
    return any(c[-2:] in RETRYABLE_CATEGORIES for c in codes)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
