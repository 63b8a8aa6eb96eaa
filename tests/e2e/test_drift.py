"""Drift: runs finish and start while the job pages through the list; the job converges."""

from __future__ import annotations

from collections import Counter

from worker.models import IN_PROGRESS

HOUR = 3600.0


def _eligible_left(emu, now: float) -> list[str]:
    """In-progress runs on the emulator older than the 1 h threshold (the filter of the job)."""
    return [r.id for r in emu.runs.values()
            if r.status in IN_PROGRESS and now - r.started_on >= HOUR]


def _drifting_job(emu_thread, cli, passes):
    """A run job of up to ``passes`` passes while runs complete and start between pages."""
    emu = emu_thread(runs=200, seed=7, in_progress_share=0.8, page_cap=10,
                     drift_complete=2, drift_start=2)
    res = cli(emu, "run", "--older-than", "1h", "--page-size", "10", "--max-passes",
              str(passes), "--rate", "1000", "--concurrency", "16", "--max-cancel", "1000")
    return emu, res


def test_drift_converges_without_touching_young_runs(emu_thread, cli):
    """With runs completing and starting between pages, no eligible run is left in progress."""
    emu, res = _drifting_job(emu_thread, cli, passes=5)
    assert res.code == 0, res.stderr
    assert _eligible_left(emu, emu.config.clock()) == []
    young = {r.id for r in emu.runs.values() if r.report_name == "Drift report"}
    assert young, "the emulator started runs during the job"
    deleted = [r.run_id for r in emu.deletes()]
    assert not young & set(deleted)
    assert not young & emu.cancelled_ids()
    assert max(Counter(deleted).values()) == 1, "a run was DELETEd twice"


def test_report_covers_every_pass(emu_thread, cli):
    """Runs skipped by page shifts in pass 1 are picked up, and reported, in a later pass."""
    emu, res = _drifting_job(emu_thread, cli, passes=5)
    assert res.code == 0, res.stderr
    report = res.report
    assert report is not None
    assert report["passes"] >= 2
    selected = [r for r in report["runs"] if r["selected"]]
    assert {r["pass"] for r in selected} >= {1, 2}
    assert all(r["outcome"] is not None for r in selected)
    reported = {r["id"] for r in selected}
    assert {r.run_id for r in emu.deletes()} == reported
    assert emu.cancelled_ids() <= {r["id"] for r in selected if r["outcome"] == "cancelled"}


def test_single_pass_leaves_skipped_runs(emu_thread, cli):
    """Control: with --max-passes 1 the same drift leaves eligible runs behind."""
    emu, res = _drifting_job(emu_thread, cli, passes=1)
    assert res.code == 0, res.stderr
    assert _eligible_left(emu, emu.config.clock()) != []
