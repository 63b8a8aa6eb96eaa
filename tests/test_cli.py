"""Smoke: the CLI plans and runs against the emulator over real HTTP."""

from __future__ import annotations


def test_plan_sends_no_delete(emu_thread, cli):
    """plan lists and selects but never sends a DELETE."""
    emu = emu_thread(runs=40, seed=2)
    res = cli(emu, "plan", "--older-than", "1h")
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    assert res.report["counts"]["would_cancel"] == res.report["counts"]["selected"] > 0


def test_run_cancels_selected(emu_thread, cli):
    """run cancels exactly the selected runs."""
    emu = emu_thread(runs=40, seed=2)
    res = cli(emu, "run", "--older-than", "1h", "--rate", "500")
    assert res.code == 0, res.stderr
    selected = {k for k, v in res.outcomes().items()}
    assert emu.cancelled_ids() == selected
    assert set(res.outcomes().values()) == {"cancelled"}
