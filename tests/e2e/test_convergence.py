"""Pacing converges behind each of the emulator's limiter models (issue 13), over real HTTP.

Each run is short (400-800 cancels at a limit of 100/s, 4-8 s), so the bounds are the
benchmark's targets (bench/README.md) with a little room for a short run on a shared CI
machine; bench/limiters.py measures the same models over longer runs, and against real nginx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from local import job_seconds

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
# (wall / limit, refused share) bounds when told 5x the limit: the table's targets (1.10 and
# 1 % with RateLimit headers, 1.25 and 5 % without), the latter + 0.05 for a run of 8 s on a
# shared 2-core CI machine (measured here: 1.01-1.02 with headers, 1.08-1.17 without)
HEADERS, HEADERLESS = (1.10, 0.01), (1.30, 0.05)
TOLD_5X = {model: HEADERS if "RateLimit headers" in model else HEADERLESS for model in MODELS}


def run_against(emu: Emulator, cli: Callable[..., Any], rate: float,
                runs: int = RUNS) -> tuple[float, float]:
    """Cancel ``runs`` stuck runs told ``rate``; return (job time / limit, refused share)."""
    for _ in range(runs):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "run", "--older-than", "1h", "--rate", f"{rate:g}", "--quota-share", "1.0",
              "--concurrency", "8", "--max-cancel", str(runs))
    assert res.code == 0, res.stderr
    assert set(res.outcomes().values()) == {"cancelled"}
    api = [r for r in emu.records if r.kind in ("list", "get", "delete")]
    refused = sum(1 for r in api if r.limited is not None)
    wall = job_seconds(res.report)
    return wall / ((len(api) - refused) / LIMIT), refused / len(api)


@pytest.mark.parametrize("model", list(MODELS))
def test_told_five_times_the_limit_converges(model: str, emu_thread: Callable[..., Emulator],
                                             cli: Callable[..., Any]) -> None:
    # without RateLimit headers the opening cuts take a second or two (and with Retry-After each
    # costs a pause rounded up to a whole second): too much of a 4 s job to judge it by
    runs = RUNS if "RateLimit headers" in model else 2 * RUNS
    ratio, refused = run_against(emu_thread(runs=0, **MODELS[model]), cli, 5 * LIMIT, runs)
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
