"""A plan over --max-cancel cancels nothing but says that run would refuse."""

from __future__ import annotations


def test_plan_over_max_cancel_warns_that_run_would_refuse(emu_thread, cli):
    """plan exits 0 with would_cancel outcomes, and warns on stdout and in the report."""
    emu = emu_thread(runs=0)
    for _ in range(4):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", "--older-than", "1h", "--max-cancel", "3")
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    assert "run would refuse: 4 runs selected, more than --max-cancel 3" in res.stdout
    assert res.report["warnings"] == [
        "run would refuse: 4 runs selected, more than --max-cancel 3; raise it with "
        "--max-cancel 4 if the selection is right"]


def test_plan_within_max_cancel_has_no_warning(emu_thread, cli):
    """Within the cap, plan prints no warning and the report's warnings list is empty."""
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", "--older-than", "1h", "--max-cancel", "3")
    assert res.code == 0
    assert "warning" not in res.stdout
    assert res.report["warnings"] == []
