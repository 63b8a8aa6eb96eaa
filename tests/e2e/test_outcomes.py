"""End to end: the outcomes a run can end with, through the real CLI (exit codes: one test each
in tests/test_cli_exit_codes.py; every ending as a property in tests/e2e/test_promises.py)."""

from __future__ import annotations

from collections import Counter

import pytest


def test_outcomes_cancelled_already_cancelled_not_found(emu_thread, cli, bulk,
                                                        after_first_list, fast):
    """Runs cancelled or purged by someone else after listing end already_cancelled/not_found."""
    emu = emu_thread(runs=0)
    ids = bulk(emu, 6)

    def someone_else_acts() -> None:
        emu.runs[ids[0]].status = "CANCELLED"
        del emu.runs[ids[1]]

    after_first_list(emu, someone_else_acts)
    res = cli(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    assert res.outcomes() == {ids[0]: "already_cancelled", ids[1]: "not_found",
                              **dict.fromkeys(ids[2:], "cancelled")}
    assert emu.cancelled_ids() == set(ids[2:])
    assert Counter(r.run_id for r in emu.deletes()) == dict.fromkeys(ids, 1)


def test_outcome_already_finished_from_drift(emu_thread, cli, bulk, fast):
    """Runs that complete while the job runs are refused, checked by GET, and already_finished."""
    emu = emu_thread(runs=0, drift_complete=2)
    bulk(emu, 10)
    res = cli(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    finished = {rid for rid, run in emu.runs.items() if run.status == "COMPLETED"}
    assert finished
    assert {k for k, v in res.outcomes().items() if v == "already_finished"} == finished
    assert {k for k, v in res.outcomes().items() if v == "cancelled"} == emu.cancelled_ids()
    assert {r.run_id for r in emu.records if r.kind == "get"} == finished
    assert res.report["counts"]["already_finished"] == len(finished)


@pytest.mark.slow
def test_poison_ids_get_bounded_attempts_and_end_unknown(emu_thread, cli_subprocess, bulk, fast):
    """Ids that always answer 500 get at most --max-attempts DELETEs, end unknown (a 5xx is no
    definitive answer, and the read-back GET answers 500 too), and exit 1."""
    emu = emu_thread(runs=0)
    ids = bulk(emu, 8)
    poison = set(ids[:2])
    emu.config.poison_ids = poison
    res = cli_subprocess(emu, "run", "--older-than", "1h", "--max-attempts", "3", *fast)
    assert res.code == 1, res.stderr
    per_id = Counter(r.run_id for r in emu.deletes())
    assert all(1 <= per_id[rid] <= 3 for rid in poison)
    assert all(per_id[rid] == 1 for rid in ids[2:])
    assert res.outcomes() == {**dict.fromkeys(poison, "unknown"),
                              **dict.fromkeys(ids[2:], "cancelled")}
    assert emu.cancelled_ids() == set(ids[2:])
    assert all(r["error"] for r in res.report["runs"] if r["id"] in poison)
    assert "failed" in res.stderr
