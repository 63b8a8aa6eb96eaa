"""Reconcile before reporting: DELETEs the server applied but whose answers were lost (a
stall past the attempt timeout, a dropped connection, a gateway 504) are read back with a paced
GET, so the report's counts equal what the server did."""

from __future__ import annotations

import pytest

FAST = ("--rate", "1000", "--concurrency", "8", "--older-than", "1h", "--max-attempts", "2")


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["stall", "drop", "504"])
def test_applied_deletes_with_lost_answers_are_reported_cancelled(emu_thread, cli, lost):
    emu = emu_thread(runs=0, cancel_then=lost, cancel_stall_s=2.0)
    ids = [emu.add_run(status="STARTED", age_s=7200).id for _ in range(6)]
    res = cli(None, "run", "--base-url", emu.base_url, *FAST, "--attempt-timeout", "0.3s")
    assert res.code == 0, res.stderr
    assert res.outcomes() == dict.fromkeys(ids, "cancelled")
    assert emu.cancelled_ids() == set(ids)
    runs = {r["id"]: r for r in res.report["runs"]}
    assert all(runs[i]["reconciled"] for i in ids)
    assert all(runs[i]["error"] is None for i in ids)
    assert res.report["counts"]["cancelled"] == len(emu.cancelled_ids())
    assert res.report["counts"]["unknown"] == res.report["counts"]["failed"] == 0
    gets = [r for r in emu.records if r.kind == "get"]
    assert sorted(r.run_id for r in gets) == sorted(ids)  # one read-back GET each


def test_a_run_the_server_never_cancelled_is_still_running(emu_thread, cli):
    """Every DELETE of a run answers 500 without applying it (a poison id; its GET works): the
    read-back says still_running, and the job exits 1."""
    emu = emu_thread(runs=0, poison_ids={"stuck"}, poison_get=False)
    emu.add_run(run_id="stuck", status="STARTED", age_s=7200)
    emu.add_run(run_id="ok", status="STARTED", age_s=7200)
    res = cli(None, "run", "--base-url", emu.base_url, *FAST)
    assert res.code == 1
    assert res.outcomes() == {"stuck": "still_running", "ok": "cancelled"}
    stuck = next(r for r in res.report["runs"] if r["id"] == "stuck")
    assert stuck["reconciled"] is True
    assert "read back: still STARTED" in stuck["error"]
    assert emu.cancelled_ids() == {"ok"}


def test_deadline_leaves_unsure_runs_unknown_not_failed(emu_thread, cli):
    """When the deadline stops the job before a read-back, the runs are unknown (the server may
    have cancelled them), never "failed"."""
    emu = emu_thread(runs=0, cancel_then="stall", cancel_stall_s=5.0)
    emu.add_run(run_id="r1", status="STARTED", age_s=7200)
    res = cli(None, "run", "--base-url", emu.base_url, *FAST, "--attempt-timeout", "0.6s",
              "--deadline", "0.4s")
    assert res.code == 5
    assert res.outcomes() == {"r1": "unknown"}
    assert emu.cancelled_ids() == {"r1"}


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["lost_504", "lost_drop", "lost_stall"])
def test_was_canceled_after_a_lost_answer_is_this_jobs_cancel(emu_thread, cli, lost):
    """The first DELETE was applied and its answer lost; the retry hears "was canceled". This
    job cancelled the run: the report says cancelled (reconciled), as the server's journal."""
    emu = emu_thread(runs=0, cancel_stall_s=2.0)
    ids = [emu.add_run(status="STARTED", age_s=7200).id for _ in range(3)]
    emu.config.cancel_script = {run_id: [lost] for run_id in ids}
    res = cli(None, "run", "--base-url", emu.base_url, *FAST, "--max-attempts", "3",
              "--attempt-timeout", "0.3s")
    assert res.code == 0, res.stderr
    assert res.outcomes() == dict.fromkeys(ids, "cancelled")
    journal = emu.cancelled_by
    assert all(journal[i].startswith(f"zr-{res.report['job_id']}-") for i in ids)
    runs = {r["id"]: r for r in res.report["runs"]}
    assert all(runs[i]["reconciled"] and runs[i]["attempts"] == 2 for i in ids)
    assert sum(emu.deletes_received().values()) == 6  # every DELETE on the wire is counted
    assert res.report["counts"]["cancelled"] == 3
    assert res.report["counts"]["already_cancelled"] == 0


def test_was_canceled_on_a_first_answer_is_someone_elses_cancel(emu_thread, cli):
    """Cancelled by another user before this job's only DELETE: already_cancelled."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1", status="STARTED", age_s=7200)
    emu.config.cancel_script = {"r1": ["other_cancel"]}
    res = cli(None, "run", "--base-url", emu.base_url, *FAST)
    assert res.code == 0, res.stderr
    assert res.outcomes() == {"r1": "already_cancelled"}
    assert emu.cancelled_by == {"r1": "another user"}


@pytest.mark.slow
@pytest.mark.parametrize("then", ["refuse", "forbid"])
def test_a_refusal_after_a_lost_answer_is_never_failed_on_a_guess(emu_thread, cli, then):
    """The first DELETE was applied and its answer lost; the retry is refused (a 400, or a 403
    from a gateway), and no GET can tell what happened (every GET hangs past the attempt
    timeout). This job may well have cancelled the run, and did: unknown, never failed."""
    emu = emu_thread(runs=0, stall={"get": 5.0})
    emu.add_run(run_id="r0", status="STARTED", age_s=7200)
    emu.config.cancel_script = {"r0": ["lost_504", then]}
    res = cli(None, "run", "--base-url", emu.base_url, *FAST, "--max-attempts", "2",
              "--attempt-timeout", "0.3s", "--max-passes", "1")
    assert emu.cancelled_by["r0"].startswith(f"zr-{res.report['job_id']}-")  # this job did
    assert res.outcomes() == {"r0": "unknown"}, res.report["runs"][0]["error"]
    assert "may have cancelled it" in res.report["runs"][0]["error"] or then == "refuse"
    assert res.code == 1
