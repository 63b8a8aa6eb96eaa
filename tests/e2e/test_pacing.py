"""Acceptance tests of pacing against the emulator: caps, header learning, both 429 kinds,
the retry budget and the deadline. Everything is asserted on what the emulator received.

Waits are zero or about one second: retries use ``RetryPolicy(base=0, cap=0)`` or the emulator's
``concurrency_retry_after``; the only real pause is the rate-429 gate (Retry-After is whole
seconds, so at least 1 s).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from local import job_seconds, max_in_window

from worker.cli import exit_code_of
from worker.config import Settings, load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator
from worker.emulator.runs import RequestRecord
from worker.job import JobDeps, run_job
from worker.models import JobResult, Outcome
from worker.report import verdict
from worker.retry import RetryPolicy

OAUTH = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
API_KINDS = ("list", "get", "delete")


def add_runs(emu: Emulator, count: int) -> set[str]:
    """``count`` stuck runs, an hour old; returns their ids."""
    return {emu.add_run(status="STARTED", age_s=3600).id for _ in range(count)}


def api_records(emu: Emulator) -> list[RequestRecord]:
    return sorted((r for r in emu.records if r.kind in API_KINDS), key=lambda r: r.t)


def settings_for(emu: Emulator, **flags: Any) -> Settings:
    values = {"target.base_url": emu.base_url, "safety.max_cancel": "100000", **flags}
    return load_settings("run", values, OAUTH)


async def run_fast(settings: Settings, **deps: Any) -> JobResult:
    """run_job with zero-wait backoff, and the not_attempted fill-in the runner does."""
    result = await run_job(settings, JobDeps(policy=RetryPolicy(base=0, cap=0), **deps))
    result.settle_unattempted()
    return result


def outcomes(result: JobResult) -> dict[str, Outcome | None]:
    return {key: rec.outcome for key, rec in result.records.items() if rec.selected}


# -- the caps ------------------------------------------------------------------------------


@pytest.mark.slow
def test_never_exceeds_rate_or_concurrency(emu_thread: Callable[..., Emulator],
                                           cli: Callable[..., Any]) -> None:
    """Requests in flight stay <= --concurrency and starts obey --rate over sliding windows."""
    emu = emu_thread(runs=0, latency_ms=15)
    ids = add_runs(emu, 120)
    res = cli(emu, "run", "--rate", "100", "--concurrency", "3", "--max-cancel", "1000")
    assert res.code == 0, res.stderr
    assert set(res.outcomes()) == ids
    assert set(res.outcomes().values()) == {"cancelled"}
    assert emu.max_in_flight <= 3
    times = [r.t for r in api_records(emu)]
    # a bucket of 0.1 s of rate: at most rate*w + 10 (+1 for the starting token) in w seconds
    for width in (0.2, 0.5, 1.0):
        assert max_in_window(times, width) <= 100 * width + 10 + 1 + 2  # 2: arrival jitter


# -- learning from headers -----------------------------------------------------------------


@pytest.mark.slow
def test_slows_to_a_quota_tighter_than_rate(emu_thread: Callable[..., Emulator],
                                            cli: Callable[..., Any]) -> None:
    """With --rate 10x the server's quota the job learns the quota from the headers."""
    emu = emu_thread(runs=0, rate=80, rate_window=1)
    ids = add_runs(emu, 120)
    res = cli(emu, "run", "--rate", "800", "--quota-share", "1.0", "--concurrency", "4",
              "--max-cancel", "1000")
    assert res.code == 0, res.stderr
    assert set(res.outcomes()) == ids
    assert set(res.outcomes().values()) == {"cancelled"}
    api = api_records(emu)
    assert emu.limited_count("rate") <= 2  # at most a stray one, never a storm
    assert emu.limited_count("concurrency") == 0
    admitted = [r.t for r in api if r.limited is None]
    assert max_in_window(admitted, 1.0) <= 80 + 8 + 2  # quota + burst + arrival jitter
    assert admitted[-1] - admitted[0] >= 1.0  # 120+ calls at 80/s cannot take under 1.5 s


# -- Zuora's quota windows (the emulator's tenant presets) ---------------------------------


@pytest.mark.slow
def test_an_api_sandbox_with_default_pacing_cancels_120_runs_without_a_refusal(
        emu_thread: Callable[..., Emulator], cli: Callable[..., Any]) -> None:
    """An API Sandbox (2,500/min, 5,000/h, 10,000/day): the minute paces, the hour and the day
    are budgets, so the default --rate 10 holds; before, the day's average rate planned
    0.058/s and 120 cancels took 35 minutes."""
    emu = emu_thread(runs=0, limiter="zuora", tenant="api-sandbox")
    ids = add_runs(emu, 120)
    res = cli(emu, "run", "--max-cancel", "200")
    assert res.code == 0, res.stderr
    assert set(res.outcomes()) == ids
    assert set(res.outcomes().values()) == {"cancelled"}
    assert emu.limited_count("rate") == 0
    pacing = res.report["pacing"]
    assert pacing["planned_rate"] == 10.0  # --rate 10 is under 0.5 x 2,499 / 60
    assert pacing["budgets"] == {"hourly": {"quota": 5000, "allowed": 2500},
                                 "daily": {"quota": 10000, "allowed": 5000}}
    assert job_seconds(res.report) <= 40  # the target; about 13 s at 10/s


@pytest.mark.slow
def test_a_job_needing_more_than_its_share_of_the_hour_stops_inside_it(
        emu_thread: Callable[..., Emulator], cli: Callable[..., Any]) -> None:
    """Another client left 100 of the sandbox's hour: this job may send half of that, counting
    its failed requests, then stops with exit 5 and leaves the rest for the next job; the
    tenant's hour is never run dry."""
    emu = emu_thread(runs=0, limiter="zuora", tenant="api-sandbox",
                     windows_used={3600: 4900})
    ids = add_runs(emu, 120)
    emu.config.poison_ids = set(sorted(ids)[::4])  # 500s: their retries count too
    res = cli(emu, "run", "--max-cancel", "200", "--rate", "100", "--max-attempts", "3")
    assert res.code == 5, res.stderr
    sent = [r for r in emu.records if r.kind in API_KINDS]
    assert len(sent) == 50  # the listing page said 99 left: 1 + floor(0.5 x 99)
    deletes = emu.deletes_received()
    assert sum(deletes.values()) > len(deletes)  # retried DELETEs were among the 50
    assert emu.limited_count("rate") == 0
    reason = res.report["exit_reason"]
    assert reason.startswith("stopped: the hourly quota share is spent (50 requests for this "
                             "job), the window resets in ")
    outcomes = res.outcomes()
    assert set(outcomes) == ids
    assert Counter(outcomes.values())["not_attempted"] == 120 - len(emu.deletes_received())
    assert f"{Counter(outcomes.values())['not_attempted']} selected runs not attempted, left " \
           "for the next job" in reason
    assert {k for k, v in outcomes.items() if v == "cancelled"} == emu.cancelled_ids()


# -- the two kinds of 429 ------------------------------------------------------------------


@pytest.mark.slow
async def test_rate_429_pauses_every_request(make_emulator: Callable[..., Any]) -> None:
    """A rate 429 closes the gate for all: nothing is admitted until Retry-After has passed."""
    emu: Emulator = await make_emulator(runs=0, rate=1000, rate_window=1, latency_ms=10)
    ids = add_runs(emu, 60)
    settings = settings_for(emu, **{"pacing.rate": "200", "pacing.concurrency": "4",
                                    "pacing.quota_share": "1.0"})
    done = 0
    limiter = emu._core.rate  # the emulator's quota counter

    def squeeze(_rec: Any) -> None:  # after 10 cancels the quota shrinks below what was used
        nonlocal done
        done += 1
        if done == 10:
            # Zuora refreshes RateLimit-Remaining about once a second: the headers still show
            # room, so the drop is found by a 429 (not learnt early, which would send none)
            stale = limiter.headers(emu.config)
            limiter.headers = lambda _config: stale
            emu.config.rate = 1

    async def restore() -> None:
        while emu.limited_count("rate") == 0:  # noqa: ASYNC110 - the emulator has no event
            await asyncio.sleep(0.005)
        del limiter.headers
        emu.config.rate = 1000

    restorer = asyncio.create_task(restore())
    result = await run_fast(settings, on_done=squeeze)
    await restorer
    assert set(outcomes(result)) == ids
    assert set(outcomes(result).values()) == {Outcome.CANCELLED}
    api = api_records(emu)
    limited = [r for r in api if r.limited == "rate"]
    assert 1 <= len(limited) <= 4  # only what was already in flight when the quota ran out
    first = limited[0].t
    in_pause = [r for r in api if first < r.t < first + 0.9]
    assert len(in_pause) <= 3  # only calls already in flight (4 slots); Retry-After held the rest
    assert any(r.t >= first + 0.9 and r.limited is None for r in api)  # then everyone resumed
    assert result.counters.limited["rate"] == len(limited)


@pytest.mark.slow
async def test_concurrency_429_requeues_only_that_run(make_emulator: Callable[..., Any]) -> None:
    """A concurrency 429 delays only its own run (Retry-After) and shrinks the limit."""
    emu: Emulator = await make_emulator(runs=0, concurrency_retry_after=1, latency_ms=30)
    ids = add_runs(emu, 40)
    settings = settings_for(emu, **{"pacing.rate": "1000", "pacing.concurrency": "6"})

    def cap(_rec: Any) -> None:  # the cap appears once cancels run (the listing would teach it)
        emu.config.concurrency = 3

    result = await run_fast(settings, on_done=cap)
    assert set(outcomes(result)) == ids
    assert set(outcomes(result).values()) == {Outcome.CANCELLED}
    api = api_records(emu)
    limited = [r for r in api if r.limited == "concurrency"]
    assert 1 <= len(limited) <= 3  # the opening burst (6 > 3); then Concurrency-Limit-Limit caps
    assert all(r.seq <= limited[0].seq + 6 for r in limited)  # none once the limit was learned
    assert emu.limited_count("rate") == 0
    for refused in limited:
        retries = [r for r in api if r.run_id == refused.run_id and r.t > refused.t]
        assert retries
        assert retries[0].t - refused.t >= 0.95  # waited its own Retry-After
        others = [r for r in api if refused.t < r.t < retries[0].t and r.limited is None]
        assert len(others) >= 5  # while the other runs went on
    assert result.counters.limited["concurrency"] == len(limited)


# -- budgets and the deadline --------------------------------------------------------------


def test_deadline_stops_new_work_and_reports_everything(emu_thread: Callable[..., Emulator],
                                                       cli: Callable[..., Any]) -> None:
    """After --deadline nothing new starts, in-flight calls finish, the report is whole, exit 5."""
    emu = emu_thread(runs=0, latency_ms=100)
    ids = add_runs(emu, 60)
    res = cli(emu, "run", "--rate", "1000", "--concurrency", "2", "--max-cancel", "1000",
              "--deadline", "0.8s")
    assert res.code == 5, res.stderr
    assert "deadline" in res.stderr
    got = res.outcomes()
    assert set(got) == ids  # every selected run is in the report
    assert set(got.values()) == {"cancelled", "not_attempted"}  # none cut off in flight
    assert {k for k, v in got.items() if v == "cancelled"} == emu.cancelled_ids()
    assert 0 < len(emu.cancelled_ids()) < 60
    deletes = [r.t for r in emu.deletes()]
    first = min(r.t for r in emu.records)
    # nothing started after the deadline (the emulator's clock, not the job's: 1 s of room
    # for a busy machine; the stop-bound property in test_promises holds the exact promise)
    assert max(deletes) - first <= 0.8 + 1.0


async def test_deadline_ends_a_wait_behind_a_closed_gate(
        make_emulator: Callable[..., Any]) -> None:
    """Runs queued behind a rate pause longer than the deadline stop at the deadline."""
    emu: Emulator = await make_emulator(runs=0)
    ids = add_runs(emu, 20)
    settings = settings_for(emu, **{"pacing.rate": "1000", "pacing.concurrency": "2",
                                    "pacing.deadline": "0.5s"})
    loop = asyncio.get_running_loop()

    def close_gate(_rec: Any) -> None:  # from now on: one request per minute
        emu.config.rate, emu.config.rate_window = 0.001, 60.0

    start = loop.time()
    result = await run_fast(settings, on_done=close_gate)
    assert loop.time() - start < 2.0  # not the minute the quota needs to reopen
    assert exit_code_of(verdict(result)[0]) == 5
    assert "deadline" in (result.stop_reason or "")
    assert set(outcomes(result)) == ids
    assert None not in outcomes(result).values()
