"""The API client: every request goes pacer slot -> auth -> HTTP -> classify, retried by
``worker.retry``; and :func:`connect`, the one place the client stack is assembled.

Only transient failures are retried (429, 500/502/503/504, timeouts, dropped connections),
honouring Retry-After; a 401 triggers one shared token refresh and one immediate resend; 4xx
answers are returned to the caller, who decides what they mean for a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from worker.api_bodies import describe, reason_codes
from worker.auth import Auth, make_auth
from worker.config import Settings
from worker.control import JobControl
from worker.errors import (
    ApiError,
    AuthError,
    Interrupted,
    QuotaSpent,
    RateLimited,
    TransientError,
)
from worker.http import Response, Transport
from worker.logs import REDACTOR, debug_enabled
from worker.pacer import Pacer, PacerConfig, Sent
from worker.ratelimit import parse_retry_after
from worker.retry import ApiRetry, CallState, RetryBudget, RetryPolicy

log = structlog.get_logger("worker.client")

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_CATEGORIES = frozenset({"50", "60", "61", "70", "99"})  # zuora-api.md §3.3
CONCURRENCY_CODE = "50000070"
NEVER_SENT = frozenset({"connect", "proxy"})  # TransientError codes of a request never sent


@dataclass(slots=True)
class _Call:
    """One logical request, as every attempt sends it."""

    method: str
    path: str
    url: str
    json_body: Any
    params: list[tuple[str, str]] | None
    max_body: int | None


class ApiClient:
    """A paced, retried client for the Reporting API of one target."""

    def __init__(self, api_root: str, transport: Transport, auth: Auth, pacer: Pacer,
                 budget: RetryBudget, control: JobControl, policy: RetryPolicy, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.api_root = api_root
        self.control = control
        self.pacer, self.auth = pacer, auth
        self._transport, self._budget = transport, budget
        self._retry = ApiRetry(policy, budget, pacer, control, sleep, rand)

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: list[tuple[str, str]] | None = None,
                      state: CallState | None = None, max_body: int | None = None) -> Response:
        """Send one logical request with retries; return the first definitive answer.

        Raises ApiUnreachable when the retries end on a transient failure, AuthError on a 401
        that survives a token refresh, Interrupted when the job is stopping, UnusableResponse
        (a redirect, an answer over a hard limit) at once.
        """
        st = state or CallState()
        call = _Call(method, path, self.api_root + path, json_body, params, max_body)
        return await self._retry.call(lambda: self._attempt(call, st), st, f"{method} {path}")

    async def _attempt(self, call: _Call, st: CallState) -> Response:
        """One attempt: send; on a first 401 refresh the token and send once more; classify."""
        resp, used = await self._send(call, st)
        if resp.status == 401 and not st.refreshed:
            st.refreshed = True
            await self._refresh(used)
            log.info("auth.refreshed", method=call.method, path=call.path)
            resp, used = await self._send(call, st)
        if resp.status == 401:
            raise AuthError("the API answered 401 again after a token refresh: the "
                            "credentials or token are not accepted for Reporting", status=401)
        return self._classify(resp, st)

    async def _send(self, call: _Call, st: CallState) -> tuple[Response, dict[str, str]]:
        """Send inside a pacer slot and observe the answer; return it and the auth headers used.

        A request queued behind a closed pause gate past the deadline is cut with the rest of
        the job when the deadline stops it (``JobControl.bounded``).
        """
        self._raise_if_stopping()
        try:
            async with self._pacer_slot() as sent:
                st.sent = sent
                self._raise_if_stopping()  # stopped while we waited for a slot
                # Take the token only now: one taken before a long wait for a slot (a rate
                # pause) may have expired by the time the request goes out.
                auth_headers = await self._auth_headers()
                resp = await self._exchange(call, st, auth_headers)
        except TransientError as exc:
            self.control.counters.network_errors += 1
            st.transient += 1
            st.unanswered += exc.code not in NEVER_SENT  # it may have reached the server
            raise
        self.pacer.observe(resp.status, resp.headers, st.sent)
        self.control.clock.observe(resp.header("Date"))
        self.control.counters.count_status(resp.status, resp.elapsed)
        return resp, auth_headers

    @contextlib.asynccontextmanager
    async def _pacer_slot(self) -> AsyncIterator[Sent]:
        """The pacer's slot; a quota window's share spent stops the job (nothing is sent)."""
        try:
            async with self.pacer.slot() as sent:
                yield sent
        except QuotaSpent as exc:
            self.control.request_stop(str(exc), exc.kind)
            raise Interrupted(str(exc)) from None

    async def _auth_headers(self) -> dict[str, str]:
        """The auth headers; a token that cannot be had (refused, unreachable, an unusable
        answer) fails every call from now on, so it stops the job with that error's kind."""
        try:
            return await self.auth.headers()
        except ApiError as exc:
            self.control.request_stop(f"no access token: {exc}", exc.kind)
            raise

    async def _refresh(self, used: dict[str, str]) -> None:
        try:
            await self.auth.refresh(used)
        except ApiError as exc:
            self.control.request_stop(f"no access token: {exc}", exc.kind)
            raise

    async def _exchange(self, call: _Call, st: CallState,
                        auth_headers: dict[str, str]) -> Response:
        """The HTTP exchange itself, counted in flight (for the grace period of a stop)."""
        headers = {**auth_headers, "Zuora-Track-Id": self.control.track_id()}
        st.attempts += 1
        resp = await self._transport.send(call.method, call.url, headers=headers,
                                          json_body=call.json_body, params=call.params,
                                          max_body=call.max_body)
        if debug_enabled():
            log.debug("http.response", method=call.method, url=call.url, status=resp.status,
                      track_id=headers["Zuora-Track-Id"],
                      elapsed_ms=round(resp.elapsed * 1000, 1),
                      request_id=REDACTOR.scrub(resp.header("Zuora-Request-Id") or ""))
        return resp

    def _raise_if_stopping(self) -> None:
        if self.control.is_stopping():
            raise Interrupted(self.control.stop_reason or "stopping")

    def _classify(self, resp: Response, st: CallState) -> Response:
        """Raise for a 429 or a retryable failure; return every other answer."""
        if resp.status == 429:
            raise self._throttled(resp, st)
        if resp.status in RETRYABLE_STATUSES or _retryable_failure(resp):
            st.transient += 1
            st.unanswered += resp.status >= 500  # a gateway's 5xx says nothing of the server
            raise TransientError(f"HTTP {resp.status}: {describe(resp)}",
                                 status=resp.status,
                                 retry_after=parse_retry_after(resp.header("Retry-After"),
                                                               time.time()))
        return resp

    def _throttled(self, resp: Response, st: CallState) -> RateLimited:
        """Which limit refused the request (the pacer hears of it here), as a RateLimited."""
        codes = reason_codes(resp.body)
        retry_after = parse_retry_after(resp.header("Retry-After"), time.time())
        is_conc = CONCURRENCY_CODE in codes or (
            resp.header("Concurrency-Limit-Remaining") == "0"
            and resp.header("RateLimit-Remaining") != "0" and "70" not in codes)
        limit = "concurrency" if is_conc else "rate"
        self.control.counters.limited[limit] += 1
        if is_conc:
            self.pacer.on_concurrency_limited()
        else:
            self.pacer.on_rate_limited(retry_after, st.sent)
        return RateLimited(f"HTTP 429 ({limit} limit): {describe(resp)}", limit=limit,
                           retry_after=retry_after)


@contextlib.asynccontextmanager
async def connect(settings: Settings, control: JobControl, *, policy: RetryPolicy | None = None,
                  concurrency: int | None = None) -> AsyncIterator[ApiClient]:
    """The client stack of one job (or of ``check``, which asks for less concurrency and fewer
    attempts): one connection pool, one auth, one pacer, one retry budget."""
    pacing = settings.pacing
    concurrency = concurrency or pacing.concurrency
    async with Transport(limit=concurrency, attempt_timeout=pacing.attempt_timeout,
                         network=settings.network) as transport:
        auth = make_auth(settings, transport, control.track_id)
        pacer = Pacer(PacerConfig(rate=pacing.rate, concurrency=concurrency,
                                  quota_share=pacing.quota_share), flights=control.flights)
        yield ApiClient(settings.target.api_root, transport, auth, pacer,
                        RetryBudget(capacity=pacing.retry_budget), control,
                        policy or RetryPolicy(max_attempts=pacing.max_attempts))


def _retryable_failure(resp: Response) -> bool:
    """A 2xx/4xx body with success:false and a retryable Zuora category (lock, temporary...)."""
    if not isinstance(resp.body, Mapping) or resp.body.get("success") is not False:
        return False
    codes = [c for c in reason_codes(resp.body) if c.isdigit() and len(c) == 8]
    return any(c[-2:] in RETRYABLE_CATEGORIES for c in codes)
