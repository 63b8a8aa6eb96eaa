"""Pacing converges behind each of the emulator's limiter models (issue 13), over real HTTP.

Each run is short (a few hundred cancels at a limit of 100/s, 3-5 s), so the bounds are the
benchmark's targets (bench/README.md) with room for a short run's start-up and a shared CI
machine; bench/limiters.py measures the same models over longer runs, and against real nginx.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from worker.emulator import Emulator

LIMIT = 100.0  # requests/s the limiter allows
RUNS = 400

MODELS: dict[str, dict[str, Any]] = {
    "window 1 s with RateLimit headers": {"rate": LIMIT, "rate_window": 1},
    "window 10 s with RateLimit headers": {"rate": LIMIT, "rate_window": 10},
    "window 1 s, Retry-After only": {"rate": LIMIT, "rate_window": 1, "rate_headers": False},
    "window 1 s, bare 429": {"rate": LIMIT, "rate_window": 1, "rate_headers": False,
                             "rate_retry_after": False},
    "leaky bucket, bare 429 (nginx limit_req)": {"rate": LIMIT, "limiter": "bucket",
                                                 "burst": 5},
}
# (wall / limit, refused share) bounds when told 5x the limit: the targets, plus a short run's
# start-up (the first cuts) and a shared machine's noise
TOLD_5X = {
    "window 1 s with RateLimit headers": (1.15, 0.02),
    "window 10 s with RateLimit headers": (1.15, 0.02),
    "window 1 s, Retry-After only": (1.35, 0.05),
    "window 1 s, bare 429": (1.35, 0.08),
    "leaky bucket, bare 429 (nginx limit_req)": (1.35, 0.08),
}


def run_against(emu: Emulator, cli: Callable[..., Any], rate: float) -> tuple[float, float]:
    """Cancel RUNS stuck runs told ``rate``; return (job time / limit, refused share)."""
    for _ in range(RUNS):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "run", "--older-than", "1h", "--rate", f"{rate:g}", "--quota-share", "1.0",
              "--concurrency", "8", "--max-cancel", str(RUNS))
    assert res.code == 0, res.stderr
    assert set(res.outcomes().values()) == {"cancelled"}
    api = [r for r in emu.records if r.kind in ("list", "get", "delete")]
    refused = sum(1 for r in api if r.limited is not None)
    report = res.report
    wall = (datetime.fromisoformat(report["finished_at"])
            - datetime.fromisoformat(report["started_at"])).total_seconds()
    return wall / ((len(api) - refused) / LIMIT), refused / len(api)


@pytest.mark.parametrize("model", list(MODELS))
def test_told_five_times_the_limit_converges(model: str, emu_thread: Callable[..., Emulator],
                                             cli: Callable[..., Any]) -> None:
    ratio, refused = run_against(emu_thread(runs=0, **MODELS[model]), cli, 5 * LIMIT)
    max_ratio, max_refused = TOLD_5X[model]
    assert ratio <= max_ratio, f"{model}: {ratio:.3f} of the limit's time"
    assert refused <= max_refused, f"{model}: {refused:.1%} refused"


@pytest.mark.parametrize("model", ["window 1 s with RateLimit headers",
                                   "leaky bucket, bare 429 (nginx limit_req)"])
def test_told_the_limit_runs_at_it_and_is_never_refused(
        model: str, emu_thread: Callable[..., Emulator], cli: Callable[..., Any]) -> None:
    ratio, refused = run_against(emu_thread(runs=0, **MODELS[model]), cli, LIMIT)
    assert ratio <= 1.10, f"{model}: {ratio:.3f} of the limit's time"
    assert refused == 0


def test_placeholder_headers_do_not_slow_a_job(emu_thread: Callable[..., Emulator],
                                               cli: Callable[..., Any]) -> None:
    """No real limit, `Remaining: 0` and `Reset: 0` on every answer: the job runs at its rate."""
    ratio, refused = run_against(emu_thread(runs=0, placeholder_headers=True), cli, LIMIT)
    assert ratio <= 1.10
    assert refused == 0
