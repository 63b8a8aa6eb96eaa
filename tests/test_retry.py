"""The retry module: the job's retry budget, backoff and Retry-After delays, the call policy."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from aioresponses import CallbackResult, aioresponses
from hypothesis import given
from hypothesis import strategies as st
from local import MOCKED_ROOT, mocked_client

from worker.client import ApiClient
from worker.errors import ApiUnreachable, Interrupted, Kind
from worker.retry import RetryBudget, backoff, retry_delay

# -- retry budget and backoff ----------------------------------------------------------------


def test_retry_budget_drains_and_stops_at_empty() -> None:
    """Transient retries cost 10 of 500; the 51st is refused and takes nothing."""
    budget = RetryBudget()
    assert all(budget.try_acquire("transient") for _ in range(50))
    assert budget.available == 0
    assert not budget.try_acquire("transient")
    assert not budget.try_acquire("throttle")
    assert budget.available == 0


def test_retry_budget_costs_by_kind_and_refunds() -> None:
    """Throttles are cheap, timeouts dear; first-try successes refund 1 up to capacity."""
    budget = RetryBudget(capacity=25)
    assert budget.try_acquire("timeout")
    assert budget.try_acquire("transient")
    assert budget.available == 5
    assert not budget.try_acquire("transient")
    assert budget.available == 5
    assert budget.try_acquire("throttle")
    assert budget.try_acquire("throttle")
    assert not budget.try_acquire("throttle")
    budget.on_success(first_try=False)
    assert budget.available == 1
    budget.on_success(first_try=True)
    assert budget.available == 2
    for _ in range(100):
        budget.on_success(first_try=True)
    assert budget.available == 25


@given(
    attempt=st.integers(min_value=-3, max_value=100_000),
    base=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=100),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_stays_within_zero_and_cap(attempt: int, base: float, cap: float, r: float) -> None:
    """Full jitter: 0 <= backoff <= cap for any attempt, without overflow."""
    assert 0 <= backoff(attempt, base=base, cap=cap, rand=lambda: r) <= cap


def test_backoff_doubles_until_the_cap() -> None:
    """The upper bound is base*2**(attempt-1), truncated at cap."""
    bounds = [backoff(n, base=0.25, cap=10, rand=lambda: 1.0) for n in range(1, 9)]
    assert bounds == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@given(
    attempt=st.integers(min_value=1, max_value=50),
    header=st.none() | st.floats(min_value=0, max_value=1000),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_retry_delay_honours_the_header(attempt: int, header: float | None, r: float) -> None:
    """The delay is at least the header's, at most max(header, cap) + 5 s of jitter."""
    delay = retry_delay(attempt, header, base=1, cap=20, rand=lambda: r)
    assert delay >= (header or 0)
    assert delay <= max(header or 0, 20) + 5


def test_retry_delay_examples() -> None:
    """Header beats a shorter backoff, plus 10 % jitter capped at 5 s; no header: plain backoff."""
    assert retry_delay(1, 120, base=1, cap=20, rand=lambda: 0.5) == pytest.approx(122.5)
    assert retry_delay(3, 0.1, base=1, cap=20, rand=lambda: 0.5) == pytest.approx(2 + 0.005)
    assert retry_delay(3, None, base=1, cap=20, rand=lambda: 0.5) == pytest.approx(2.0)
    assert retry_delay(1, -5, base=1, cap=20, rand=lambda: 0.0) == 0.0


# -- the call policy, through the real client stack -----------------------------------------

RUN = MOCKED_ROOT + "/reportruns/r1"


@pytest.fixture
async def client() -> AsyncIterator[ApiClient]:
    async with mocked_client(_no_sleep, budget=100) as api:
        yield api


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_each_failed_attempt_is_decided_once(client: ApiClient) -> None:
    """Two rate 429s then a 200: the pacer is told of each 429 once and the budget pays one
    throttle (2 tokens) per retry, though tenacity asks its wait and stop of every attempt."""
    with aioresponses() as m:
        for _ in range(2):
            m.delete(RUN, status=429, headers={"Retry-After": "0"},
                     payload={"success": False})
        m.delete(RUN, payload={"success": True})
        resp = await client.request("DELETE", "/reportruns/r1")
    assert resp.status == 200
    assert client.pacer.stats["rate_limited"] == 2
    assert client._budget.available == 100 - 2 * 2
    assert client.control.counters.retries == 2


async def test_retries_that_end_on_a_transient_failure_raise_api_unreachable(
        client: ApiClient) -> None:
    """Three 503s (max_attempts 3): ApiUnreachable naming the call, its attempts and the last
    answer; the budget paid two retries, not three."""
    with aioresponses() as m:
        m.delete(RUN, status=503, payload={"message": "down"}, repeat=True)
        with pytest.raises(ApiUnreachable, match=r"DELETE /reportruns/r1 failed after 3 "
                                                 r"attempt\(s\): HTTP 503: down"):
            await client.request("DELETE", "/reportruns/r1")
    assert client._budget.available == 100 - 2 * 10


async def test_a_stopping_job_gives_up_without_paying(client: ApiClient) -> None:
    """A job told to stop while an attempt was out: that failed attempt is final (one attempt,
    no retry counted), costs the budget nothing, and the call ends with the stop's reason
    (Interrupted), not as an unreachable API: the stop caused it."""
    def stop_then_fail(_url: object, **_kwargs: object) -> CallbackResult:
        client.control.request_stop("interrupted by SIGTERM", Kind.INTERRUPTED)
        return CallbackResult(status=503, payload={"message": "down"})

    with aioresponses() as m:
        m.delete(RUN, callback=stop_then_fail, repeat=True)
        with pytest.raises(Interrupted, match="interrupted by SIGTERM"):
            await client.request("DELETE", "/reportruns/r1")
    assert client.control.counters.requests == 1
    assert client._budget.available == 100
    assert client.control.counters.retries == 0


async def test_a_bare_rate_429_backs_off_that_request_alone() -> None:
    """No Retry-After, no spent window: the gate stays open for everyone, and this request waits
    its own jittered backoff (0.5 s doubling), not a second for all."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with mocked_client(record, budget=100) as api:
        api._retry = dataclasses.replace(api._retry, rand=lambda: 0.5)
        with aioresponses() as m:
            for _ in range(3):
                m.delete(RUN, status=429, body="<html>429 Too Many Requests</html>",
                         content_type="text/html")
            m.delete(RUN, payload={"success": True})
            resp = await api.request("DELETE", "/reportruns/r1")
        assert resp.status == 200
        assert api.pacer.paused_until <= asyncio.get_running_loop().time()
        assert api.pacer.stats["gate_pauses"] == 0
    assert waits == [0.25, 0.5, 1.0]  # 0.5 x 0.5 s, x 1 s, x 2 s


@pytest.mark.slow
async def test_a_rate_429_with_retry_after_waits_at_the_gate() -> None:
    """Retry-After closes the gate for everyone; the retry's own wait is 0 (the gate is it)."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with mocked_client(record, budget=100) as api:
        with aioresponses() as m:
            m.delete(RUN, status=429, headers={"Retry-After": "1"}, payload={"success": False})
            m.delete(RUN, payload={"success": True})
            resp = await api.request("DELETE", "/reportruns/r1")
        assert resp.status == 200
        assert api.pacer.stats["gate_pauses"] == 1
    assert waits == [0.0]


@pytest.mark.parametrize(("status", "headers", "payload"), [
    (503, {"Retry-After": "86400"}, {"message": "maintenance"}),
    (429, {"Retry-After": "86400", "Concurrency-Limit-Remaining": "0"}, {"success": False}),
    (429, {"Retry-After": "86400"}, {"success": False}),
], ids=["503", "concurrency-429", "rate-429"])
async def test_a_retry_after_longer_than_a_job_waits_stops_the_job(
        status: int, headers: dict[str, str], payload: dict[str, object]) -> None:
    """Told to come back in a day, by any answer: the job stops (exit 5, its reason naming the
    wait) rather than sleep a day or spend its retries on it."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with mocked_client(record, budget=100) as api:
        with aioresponses() as m:
            m.delete(RUN, status=status, headers=headers, payload=payload, repeat=True)
            with pytest.raises(Interrupted, match=r"asked to wait 86400s \(Retry-After\), "
                                                  r"longer than the 900s a job waits"):
                await api.request("DELETE", "/reportruns/r1")
        assert api.control.stop_kind is Kind.INTERRUPTED
    assert waits == []


@pytest.mark.parametrize("headers", [{}, {"Concurrency-Limit-Remaining": "0"}],
                         ids=["503", "concurrency-429"])
async def test_a_retry_after_of_15_minutes_is_waited(headers: dict[str, str]) -> None:
    """900 s is the longest wait a job makes, not a stop: the jitter added to it is ours."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    status = 429 if headers else 503
    async with mocked_client(record, budget=100) as api:
        with aioresponses() as m:
            m.delete(RUN, status=status, headers={"Retry-After": "900", **headers}, payload={})
            m.delete(RUN, payload={"success": True})
            resp = await api.request("DELETE", "/reportruns/r1")
        assert resp.status == 200
        assert not api.control.is_stopping()
    assert len(waits) == 1
    assert 900 <= waits[0] <= 905


async def test_refused_for_longer_than_a_call_waits_stops_the_job_as_a_throttle() -> None:
    """Bare 429s past the call's throttle window (900 s): the job stops (exit 5) naming the
    throttle; the API is not unreachable (that is exit 6, for another cause)."""
    async with mocked_client(_no_sleep, budget=10**6) as api:
        api._retry = dataclasses.replace(
            api._retry, policy=dataclasses.replace(api._retry.policy, throttle_window=0.0))
        with aioresponses() as m:
            m.delete(RUN, status=429, body="<html>429</html>", content_type="text/html",
                     repeat=True)
            with pytest.raises(Interrupted, match=r"rate limited for \d+s: the API kept "
                                                  r"refusing for longer than the 0s a call"):
                await api.request("DELETE", "/reportruns/r1")
        assert api.control.stop_kind is Kind.INTERRUPTED
