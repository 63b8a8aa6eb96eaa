"""The report says how pacing went: planned and slowest rate, in-flight peak, pauses."""

from __future__ import annotations

import pytest


def _stage(emu, n):
    for _ in range(n):
        emu.add_run(status="STARTED", age_s=7200)


@pytest.mark.slow
def test_report_shows_the_rate_learned_from_a_tighter_quota(emu_thread, cli):
    """A quota of 40/s under --rate 1000 with share 0.5: the report plans 19.5/s (half of 39 a
    second: one request of slack per window, so evenly spaced requests never put 41 into one
    fixed window) and says so."""
    emu = emu_thread(runs=0, rate=40, rate_window=1)
    _stage(emu, 30)
    res = cli(emu, "run", "--older-than", "1h", "--rate", "1000", "--concurrency", "4",
              "--max-cancel", "100")
    assert res.code == 0, res.stderr
    pacing = res.report["pacing"]
    assert pacing["planned_rate"] == 19.5  # quota_share 0.5 of (40 - 1)/s
    assert pacing["min_rate"] <= 19.5
    assert 1 <= pacing["max_in_flight"] <= 4
    assert set(pacing) == {"planned_rate", "final_rate", "min_rate", "final_concurrency",
                           "max_in_flight", "gate_pauses", "wait_s", "throttle_events",
                           "throttles_coalesced", "header_values_ignored", "budgets"}
    assert pacing["header_values_ignored"] == {}


def test_report_pacing_without_headers_keeps_the_configured_rate(emu_thread, cli):
    """No RateLimit headers: the planned rate is --rate and nothing was paused."""
    emu = emu_thread(runs=0)
    _stage(emu, 5)
    res = cli(emu, "run", "--older-than", "1h", "--rate", "50", "--concurrency", "3")
    assert res.code == 0, res.stderr
    pacing = res.report["pacing"]
    assert pacing["planned_rate"] == pacing["final_rate"] == pacing["min_rate"] == 50.0
    assert pacing["gate_pauses"] == 0
    assert pacing["final_concurrency"] == 3


def test_report_counts_the_header_values_it_did_not_believe(emu_thread, cli):
    """Placeholder headers (Limit: unlimited, Remaining 0, Reset 0 on every answer) are not a
    spent window: nothing pauses, the job keeps its rate, and the report counts what it ignored."""
    emu = emu_thread(runs=0, placeholder_headers=True)
    _stage(emu, 10)
    res = cli(emu, "run", "--older-than", "1h", "--rate", "50", "--concurrency", "3")
    assert res.code == 0, res.stderr
    pacing = res.report["pacing"]
    answers = emu.count("list") + emu.count("delete") + emu.count("get")
    assert pacing["header_values_ignored"] == {
        "RateLimit-Limit malformed": answers,
        "Remaining 0 with Reset 0 (window ending)": answers,
    }
    assert pacing["gate_pauses"] == 0
    assert pacing["final_rate"] == pacing["min_rate"] == 50.0
