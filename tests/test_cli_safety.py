"""plan never cancels; the max-cancel guard and the age floor cancel nothing they should not."""

from __future__ import annotations

import pytest

from worker.cli import main
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

FAST = ("--rate", "1000", "--concurrency", "16")
OAUTH = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}


@pytest.mark.parametrize("argv", [("plan",), ()], ids=["plan", "bare"])
def test_plan_and_bare_command_send_no_delete(staged, cli, argv):
    """'plan' and a bare 'zuora-reaper' list and select but never send a DELETE."""
    pop = staged()
    expected = pop.expected(lambda r, age: True)
    res = cli(pop.emu, *argv, *FAST)
    assert res.code == 0, res.stderr
    assert pop.emu.deletes() == []
    assert pop.emu.count("list") >= 1
    assert all(r.method != "DELETE" for r in pop.emu.records)
    assert res.report["mode"] == "plan"
    assert res.outcomes() == dict.fromkeys(expected, "would_cancel")
    assert res.report["counts"]["would_cancel"] == len(expected) > 0


def test_plan_with_allow_young_and_tiny_age_still_sends_no_delete(staged, cli):
    """Even the widest possible plan never cancels anything."""
    pop = staged()
    res = cli(pop.emu, "plan", *FAST, "--older-than", "1s", "--allow-young",
              "--max-cancel", "1")
    assert res.code == 0, res.stderr
    assert pop.emu.deletes() == []
    assert res.report["counts"]["would_cancel"] == len(pop.expected(lambda r, a: True, 0.0))


def test_max_cancel_guard_refuses_everything(staged, cli):
    """More matches than --max-cancel: exit 4, zero DELETEs, and the message gives count and fix."""
    pop = staged()
    matched = len(pop.expected(lambda r, age: True))
    res = cli(pop.emu, "run", *FAST, "--max-cancel", str(matched - 1))
    assert res.code == 4
    assert pop.emu.deletes() == []
    assert f"{matched} runs matched" in res.stderr
    assert f"--max-cancel {matched}" in res.stderr  # how to raise the cap
    assert len(res.stderr.strip().splitlines()[-1]) > 0
    assert set(res.outcomes().values()) == {"not_attempted"}
    assert res.report["counts"]["not_attempted"] == matched


def test_max_cancel_equal_to_matches_is_allowed(staged, cli):
    """Exactly --max-cancel matches is within the cap: all are cancelled."""
    pop = staged()
    expected = pop.expected(lambda r, age: True)
    res = cli(pop.emu, "run", *FAST, "--max-cancel", str(len(expected)))
    assert res.code == 0, res.stderr
    assert pop.emu.cancelled_ids() == expected


def test_max_cancel_from_environment(staged, cli):
    """The cap can be set by ZUORA_REAPER_MAX_CANCEL as well."""
    pop = staged()
    env = {"ZUORA_CLIENT_ID": "demo-client-id-0000-0000-0000-000000",
           "ZUORA_CLIENT_SECRET": "demo-secret", "ZUORA_REAPER_MAX_CANCEL": "3"}
    res = cli(pop.emu, "run", *FAST, env=env)
    assert res.code == 4
    assert pop.emu.deletes() == []


def test_age_floor_protects_young_runs(staged, cli):
    """--older-than 1s cancels nothing younger than 5 minutes (reason age_floor)."""
    pop = staged()
    expected = pop.expected(lambda r, age: True)  # default floor: 300 s
    res = cli(pop.emu, "run", *FAST, "--older-than", "1s")
    assert res.code == 0, res.stderr
    assert pop.emu.cancelled_ids() == expected
    young = {r.id for r in pop.runs() if r.status == "STARTED"
             and pop.emu.config.clock() - r.started_on < 300}
    assert young
    assert not young & {r.run_id for r in pop.emu.deletes()}
    reasons = {r["id"]: r["reason"] for r in res.report["runs"]}
    assert {reasons[i] for i in young} == {"age_floor"}


def test_age_floor_only_run_cancels_nothing(emu_thread, cli):
    """When every in-progress run is young, run cancels nothing and exits 0."""
    emu = emu_thread(runs=0)
    for age in (5, 60, 299):
        emu.add_run(age_s=age)
    res = cli(emu, "run", *FAST, "--older-than", "1s")
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    assert res.report["counts"]["selected"] == 0


def test_allow_young_lifts_the_floor(staged, cli):
    """--allow-young lets --older-than 1s select runs younger than 5 minutes."""
    pop = staged()
    expected = pop.expected(lambda r, age: age >= 1, min_age=0.0)
    res = cli(pop.emu, "run", *FAST, "--older-than", "1s", "--allow-young")
    assert res.code == 0, res.stderr
    assert pop.emu.cancelled_ids() == expected
    assert any(pop.emu.config.clock() - pop.emu.runs[i].started_on < 300 for i in expected)


def test_a_bare_run_is_refused_before_any_request(emu_thread, monkeypatch, capsys):
    """'run' without an age, idle threshold, rules, ids or plan: exit 2, nothing sent.
    (The CLI in process as a person types it: the cli fixture adds a basis to every run.)"""
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    for name, value in OAUTH.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--base-url", emu.base_url]) == 2
    err = capsys.readouterr().err
    assert "run needs an explicit basis for selection" in err
    assert "--older-than (e.g. --older-than 2h)" in err
    assert emu.records == []


@pytest.mark.parametrize(("args", "env", "config"), [
    (("--older-than", "0s"), {}, None),
    (("--idle-for", "1h"), {}, None),
    (("--older-than", "STARTED=20m", "--status", "STARTED"), {}, None),
    (("--older-than", "STARTED=20m", "--idle-for", "1h"), {}, None),
    ((), {"ZUORA_REAPER_OLDER_THAN": "2h"}, None),
    ((), {}, '[[rules]]\nname = "old"\nolder_than = "2h"\n'),
])
def test_any_explicit_basis_lets_run_go(emu_thread, cli, tmp_path, args, env, config):
    emu = emu_thread(runs=0)
    run = emu.add_run(status="STARTED", age_s=3 * 3600)
    extra: tuple[str, ...] = ()
    if config:
        path = tmp_path / "reaper.toml"
        path.write_text(config)
        extra = ("--config", str(path))
    res = cli(emu, "run", *args, *extra, env={**OAUTH, **env})
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {run.id}


@pytest.mark.parametrize(("args", "env", "config", "uncovered"), [
    (("--older-than", "STARTED=20m"), {}, None, "QUERYDATA, PROCESSINGDATA"),
    ((), {"ZUORA_REAPER_OLDER_THAN_BY_STATUS": "STARTED=20m,QUERYDATA=1h"}, None,
     "PROCESSINGDATA"),
    ((), {}, '[filters.older_than_by_status]\nQUERYDATA = "1h"\n', "STARTED, PROCESSINGDATA"),
    ((), {}, '[[rules]]\nname = "fast"\nolder_than_by_status = {STARTED = "20m"}\n',
     "QUERYDATA, PROCESSINGDATA"),
])
def test_a_partial_per_status_threshold_is_no_basis_for_the_other_statuses(
        emu_thread, cli, tmp_path, args, env, config, uncovered):
    """A per-status table covers only the statuses it names: where it is the only age basis,
    a status it leaves out would be cancelled at the bare 5-minute floor (a 7-minute-old
    QUERYDATA run by --older-than STARTED=20m). Refused with exit 2 before any request,
    naming the statuses, in plan and run alike."""
    emu = emu_thread(runs=0)
    emu.add_run(status="QUERYDATA", age_s=7 * 60)
    extra: tuple[str, ...] = ()
    if config:
        path = tmp_path / "reaper.toml"
        path.write_text(config)
        extra = ("--config", str(path))
    for command in ("plan", "run"):
        res = cli(emu, command, *args, *extra, env={**OAUTH, **env})
        assert res.code == 2, res.stderr
        assert f"no age threshold for {uncovered}" in res.stderr
        assert emu.records == []
