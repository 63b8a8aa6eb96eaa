"""Systemic failures stop the job early; isolated failures stay isolated; faults are retried."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from worker.cancel import SystemicGuard
from worker.cli import exit_code_of
from worker.control import JobControl
from worker.errors import Kind

FAST = ("--rate", "1000", "--concurrency", "16", "--max-cancel", "1000")


def _old_runs(emu, n: int) -> list[str]:
    return [emu.add_run(status="STARTED", age_s=7200).id for _ in range(n)]


def test_403_on_every_cancel_stops_after_a_handful(emu_thread, cli):
    """403 on every DELETE: a few DELETEs, exit 3, the rest not_attempted, the permission named."""
    emu = emu_thread(runs=0, forbid_cancel=True)
    ids = _old_runs(emu, 60)
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    assert res.code == 3, res.stderr
    assert 5 <= len(emu.deletes()) <= 6
    outcomes = res.outcomes()
    assert set(outcomes) == set(ids)
    assert Counter(outcomes.values())["not_attempted"] >= len(ids) - 6
    sent = {r.run_id for r in emu.deletes()}
    assert all(outcomes[i] == "not_attempted" for i in set(ids) - sent)
    assert "Manage All Reports" in res.stderr
    assert res.report["exit_code"] == 3
    assert "Manage All Reports" in res.report["exit_reason"]


def test_403_guard_at_low_concurrency(emu_thread, cli):
    """The same with default pacing: the guard does not depend on how many calls are in flight."""
    emu = emu_thread(runs=0, forbid_cancel=True)
    _old_runs(emu, 20)
    res = cli(emu, "run", "--older-than", "1h", "--rate", "100", "--concurrency", "1")
    assert res.code == 3, res.stderr
    assert len(emu.deletes()) == 5


def test_a_refusal_streak_stops_the_job_as_failed_cancels_not_auth(emu_thread, cli):
    """Five HTTP 400 "cannot be canceled" answers in a row (the runs go on) stop the job with
    exit 1 (failed cancels), never exit 3: that code is for 401 and 403 only."""
    emu = emu_thread(runs=0)
    ids = _old_runs(emu, 20)
    emu.config.cancel_script = {run_id: ["refuse"] for run_id in ids}
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    assert res.code == 1, res.stderr
    assert len(emu.deletes()) == 5
    counts = Counter(res.outcomes().values())
    assert counts == {"failed": 5, "not_attempted": 15}
    assert res.report["exit_code"] == 1
    assert "5 cancels in a row failed with HTTP 400" in res.report["exit_reason"]
    assert "Manage All Reports" not in res.stderr


async def test_a_success_resets_the_streak():
    """Refusals interleaved with successes are not systemic; five identical ones in a row are."""
    control = JobControl()
    guard = SystemicGuard(control)
    for _ in range(3):
        for _ in range(4):
            guard.failure("403", "forbidden", Kind.AUTH)
        guard.success()
    guard.failure("HTTP 400", "refused", Kind.FAILED)
    for _ in range(4):
        guard.failure("403", "forbidden", Kind.AUTH)
    assert not control.is_stopping()
    guard.failure("403", "forbidden", Kind.AUTH)
    assert control.is_stopping()
    assert exit_code_of(control.stop_kind) == 3
    assert "5 cancels in a row failed with 403" in (control.stop_reason or "")


async def test_guard_admits_one_at_a_time_until_proven():
    """Before the first success cancels are serialised; after it they run concurrently."""
    guard = SystemicGuard(JobControl())
    inside = 0
    peak = 0

    async def one() -> None:
        nonlocal inside, peak
        async with guard.admit():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(one() for _ in range(5)))
    assert peak == 1
    guard.success()
    await asyncio.gather(*(one() for _ in range(5)))
    assert peak == 5


@pytest.mark.slow
def test_poison_runs_fail_after_bounded_attempts(emu_thread, cli):
    """A run that always answers 500 is tried --max-attempts times, then unknown (no definitive
    answer, and the read-back GET fails too); others complete."""
    emu = emu_thread(runs=0, fault_retry_after=0)
    ids = _old_runs(emu, 30)
    poison = set(ids[:3])
    emu.config.poison_ids = poison
    res = cli(emu, "run", "--older-than", "1h", "--max-attempts", "3", *FAST)
    assert res.code == 1, res.stderr
    per_run = Counter(r.run_id for r in emu.deletes())
    assert all(per_run[i] <= 3 for i in poison)
    assert all(per_run[i] == 1 for i in set(ids) - poison)
    outcomes = res.outcomes()
    assert {outcomes[i] for i in poison} == {"unknown"}
    assert {outcomes[i] for i in set(ids) - poison} == {"cancelled"}
    assert emu.cancelled_ids() == set(ids) - poison


@pytest.mark.slow
def test_dropped_connections_and_503_storm(emu_thread, cli):
    """With a fifth of calls dropped and a fifth answered 503, every selected run is cancelled."""
    emu = emu_thread(runs=0, drop_ratio=0.2, fail_503_ratio=0.2, fault_retry_after=0, seed=3)
    ids = _old_runs(emu, 80)
    res = cli(emu, "run", "--older-than", "1h", "--retry-budget", "5000", *FAST)
    assert res.code == 0, res.stderr
    assert emu.count("delete", 503) > 0
    assert emu.count("delete", 0) > 0  # dropped
    assert set(res.outcomes().values()) == {"cancelled"}
    assert emu.cancelled_ids() == set(ids)
    assert res.report["requests"]["retries"] > 0
