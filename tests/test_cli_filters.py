"""Each filter alone, their AND, and exclusions winning: the exact set of runs cancelled."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.emulator import EmuRun

FAST = ("--rate", "1000", "--concurrency", "16")
Pred = Callable[[EmuRun, float], bool]

CASES: list[tuple[str, tuple[str, ...], Pred]] = [
    ("no_filter", (), lambda r, age: True),
    ("older_than", ("--older-than", "1h"), lambda r, age: age >= 3600),
    ("older_than_days", ("--older-than", "1d"), lambda r, age: age >= 86400),
    ("status", ("--status", "QUERYDATA"), lambda r, age: r.status == "QUERYDATA"),
    ("status_repeated", ("--status", "STARTED", "--status", "processingdata"),
     lambda r, age: r.status in ("STARTED", "PROCESSINGDATA")),
    ("report_type", ("--report-type", "Summary"), lambda r, age: r.report_type == "Summary"),
    ("exclude_report_type", ("--exclude-report-type", "Summary"),
     lambda r, age: r.report_type != "Summary"),
    ("created_by", ("--created-by", "bob@example.com", "--created-by", "carol@example.com"),
     lambda r, age: r.created_by in ("bob@example.com", "carol@example.com")),
    ("exclude_created_by", ("--exclude-created-by", "bob@example.com"),
     lambda r, age: r.created_by != "bob@example.com"),
    ("report_id", ("--report-id", "rep-a"), lambda r, age: r.report_id == "rep-a"),
    ("report_id_is_run_id", ("--report-id", "run-001"), lambda r, age: r.id == "run-001"),
    ("exclude_report_id", ("--exclude-report-id", "rep-a", "--exclude-report-id", "run-002"),
     lambda r, age: r.report_id != "rep-a" and r.id != "run-002"),
    ("all_and", ("--older-than", "1h", "--status", "QUERYDATA", "--status", "STARTED",
                 "--report-type", "Detail", "--created-by", "alice@example.com",
                 "--created-by", "carol@example.com", "--exclude-report-id", "rep-b"),
     lambda r, age: age >= 3600 and r.status in ("QUERYDATA", "STARTED")
     and r.report_type == "Detail" and r.created_by != "bob@example.com"
     and r.report_id != "rep-b"),
    ("exclusion_beats_type", ("--report-type", "Summary", "--exclude-report-type", "Summary"),
     lambda r, age: False),
    ("exclusion_beats_owner", ("--created-by", "bob@example.com",
                               "--exclude-created-by", "bob@example.com"), lambda r, age: False),
    ("exclusion_beats_id", ("--report-id", "rep-a", "--exclude-report-id", "rep-a"),
     lambda r, age: False),
    ("exclusion_beats_run_id", ("--report-id", "run-001", "--exclude-report-id", "run-001"),
     lambda r, age: False),
    ("exclude_owner_with_type", ("--report-type", "Detail",
                                 "--exclude-created-by", "alice@example.com"),
     lambda r, age: r.report_type == "Detail" and r.created_by != "alice@example.com"),
]


@pytest.mark.parametrize(("args", "predicate"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_run_cancels_exactly_the_filtered_set(staged, cli, args, predicate):
    """run cancels exactly the in-progress, old-enough runs that pass every filter."""
    pop = staged()
    expected = pop.expected(predicate)
    res = cli(pop.emu, "run", *FAST, *args)
    assert res.code == 0, res.stderr
    assert pop.emu.cancelled_ids() == expected
    assert {r.run_id for r in pop.emu.deletes()} == expected  # nothing else was even tried
    assert res.outcomes() == dict.fromkeys(expected, "cancelled")


def test_filter_cases_are_not_trivial(staged):
    """The staged grid gives every non-exclusion case a proper, non-empty subset to select."""
    pop = staged()
    everything = pop.expected(lambda r, age: True)
    for name, _args, predicate in CASES:
        chosen = pop.expected(predicate)
        if name.startswith("exclusion_beats"):
            assert chosen == set(), name
        else:
            assert chosen, name
            assert chosen == everything if name == "no_filter" else chosen < everything, name


def test_plan_selects_the_same_set_as_run(staged, cli):
    """plan reports as would_cancel exactly what run would cancel, and sends no DELETE."""
    pop = staged()
    args = ("--older-than", "1h", "--exclude-report-type", "Detail")
    expected = pop.expected(lambda r, age: age >= 3600 and r.report_type != "Detail")
    res = cli(pop.emu, "plan", *args)
    assert res.code == 0, res.stderr
    assert res.outcomes() == dict.fromkeys(expected, "would_cancel")
    assert pop.emu.deletes() == []


def test_reasons_name_the_filter_that_failed(staged, cli):
    """Every listed but unselected run says why: status, report_type, created_by, age..."""
    pop = staged()
    res = cli(pop.emu, "plan", "--status", "STARTED", "--status", "QUERYDATA",
              "--report-type", "Detail", "--exclude-created-by", "bob@example.com",
              "--older-than", "1h")
    assert res.code == 0, res.stderr
    by_id = {r["id"]: r for r in res.report["runs"]}
    runs = {r.id: r for r in pop.runs()}
    assert all(runs[i].status in ("STARTED", "QUERYDATA") for i in by_id)  # only those listed
    for run_id, entry in by_id.items():
        run = runs[run_id]
        age = pop.emu.config.clock() - run.started_on
        if run.created_by == "bob@example.com":
            want = "excluded_created_by"
        elif run.report_type != "Detail":
            want = "report_type"
        elif age < 3600:
            want = "too_young"
        else:
            want = "selected"
        assert entry["reason"] == want, (run_id, entry)
        assert entry["selected"] is (want == "selected")
        assert (entry["outcome"] is None) is (want != "selected")
