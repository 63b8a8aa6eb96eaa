"""What a person reads: the selection summary, the table (attention first), the confirmation."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from worker.models import JobResult, Outcome, ReportRun, RunRecord
from worker.screen import ask, confirmation, render, summary_lines, table_rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _rec(key: str, status: str, rtype: str, owner: str, hours: float,
         outcome: Outcome | None = None, rule: str | None = None) -> RunRecord:
    run = ReportRun(key, None, rtype, status, NOW - timedelta(hours=hours), None, owner)
    rec = RunRecord(run, key, 1, True, "selected", rule)
    if outcome is not None:
        rec.settle(outcome)
    return rec


def _result(mode: str, *records: RunRecord) -> JobResult:
    result = JobResult(mode=mode, started_at=NOW, finished_at=NOW)
    result.records = {r.key: r for r in records}
    skipped = RunRecord(ReportRun("z", None, "Detail", "COMPLETED", NOW, None, "x"), "z", 1,
                        False, "status")
    result.records["z"] = skipped
    return result


def test_the_plan_summary_counts_by_status_type_owner_and_ages():
    result = _result("plan", _rec("a", "STARTED", "Detail", "alice", 3),
                     _rec("b", "STARTED", "Summary", "bob", 50),
                     _rec("c", "QUERYDATA", "Detail", "alice", 2))
    assert summary_lines(result, NOW) == [
        "Plan: 3 run(s) to cancel (of 4 listed)",
        "  status:       STARTED 2, QUERYDATA 1",
        "  report type:  Detail 2, Summary 1",
        "  owner:        alice 2, bob 1",
        "  age:          oldest 2d2h, newest 2h",
    ]


def test_rules_are_counted_when_there_are_rules():
    result = _result("plan", _rec("a", "STARTED", "Detail", "alice", 3, rule="old"),
                     _rec("b", "STARTED", "Detail", "alice", 3, rule="old"))
    assert "  rule:         old 2" in summary_lines(result, NOW)


def test_after_a_run_the_runs_that_need_attention_come_first():
    done = _rec("a", "STARTED", "Detail", "alice", 9, Outcome.CANCELLED)
    failed = _rec("b", "STARTED", "Detail", "alice", 8, Outcome.FAILED)
    waiting = _rec("c", "STARTED", "Detail", "alice", 7, Outcome.NOT_ATTEMPTED)
    unknown = _rec("d", "STARTED", "Detail", "alice", 6, Outcome.UNKNOWN)
    result = _result("run", done, failed, waiting, unknown)
    assert [r.key for r in table_rows(result.records.values())] == ["b", "d", "c", "a"]
    out = io.StringIO()
    render(result, NOW, out)
    text = out.getvalue()
    assert text.startswith("Run: cancelled 1 of 4 selected run(s) (of 5 listed)\n")
    assert text.index("failed") < text.index("not_attempted") < text.index("cancelled 1,")


def test_the_confirmation_shows_the_runs_and_only_yes_goes_on():
    records = [_rec("a", "STARTED", "Detail", "alice", 3)]
    assert confirmation(records, NOW).startswith("About to cancel 1 report run(s):\n"
                                                 "  status:       STARTED 1\n")
    for answer, goes_on in (("yes\n", True), (" YES \n", True), ("y\n", False), ("", False)):
        assert ask(records, NOW, io.StringIO(answer), io.StringIO()) is goes_on


def test_a_long_group_wraps_within_100_columns():
    owners = [f"user-{i:02d}@a-rather-long-company-domain.example.com" for i in range(10)]
    result = _result("plan", *(_rec(str(i), "STARTED", "Detail", o, 3)
                               for i, o in enumerate(owners)))
    lines = summary_lines(result, NOW)
    assert max(map(len, lines)) <= 100
    owner_lines = lines[lines.index(next(x for x in lines if x.startswith("  owner:"))):-1]
    assert all(o in " ".join(owner_lines) for o in owners)
    assert all(line.startswith(" " * 16) for line in owner_lines[1:])
