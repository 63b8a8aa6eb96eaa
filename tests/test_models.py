"""The domain types: outcomes, run records and the job result."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.models import JobResult, Outcome, ReportRun, RunRecord

T = datetime(2018, 4, 13, 2, 11, 38, 464000, tzinfo=UTC)


def test_outcome_values_are_the_documented_names():
    """The outcome enum spells exactly the issue's outcome names."""
    assert {o.value for o in Outcome} == {"cancelled", "already_cancelled", "already_finished",
                                          "not_found", "failed", "would_cancel",
                                          "not_attempted", "still_running", "unknown", "noticed"}


def _record(key: str, selected: bool = True) -> RunRecord:
    run = ReportRun(key, None, "Detail", "STARTED", T, None, "alice", None)
    return RunRecord(run, key, 1, selected, "selected" if selected else "status")


def test_settle_sets_the_outcome_and_keeps_unsure_once_set():
    """An unsure cancel stays marked unsure when the read-back settles it (for the report)."""
    rec = _record("r1")
    rec.settle(Outcome.UNKNOWN, "no answer", unsure=True)
    rec.settle(Outcome.CANCELLED, reconciled=True)
    assert (rec.outcome, rec.error, rec.unsure, rec.reconciled) == (
        Outcome.CANCELLED, None, True, True)


def test_withdraw_unselects_a_run():
    rec = _record("r1")
    rec.withdraw("conflicting_status")
    assert (rec.selected, rec.reason, rec.rule) == (False, "conflicting_status", None)


def test_settle_unattempted_touches_only_selected_runs_without_an_outcome():
    result = JobResult(mode="run", started_at=T)
    done, waiting, skipped = _record("a"), _record("b"), _record("c", selected=False)
    done.settle(Outcome.CANCELLED)
    result.records = {r.key: r for r in (done, waiting, skipped)}
    result.settle_unattempted()
    assert [r.outcome for r in (done, waiting, skipped)] == [
        Outcome.CANCELLED, Outcome.NOT_ATTEMPTED, None]
