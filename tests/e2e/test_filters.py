"""End to end: which runs each filter combination cancels, as the emulator saw it."""

from __future__ import annotations

import pytest

# (flags, names selected). "{g}" stands for run g's report id (see STAGE in conftest).
COMBOS = [
    pytest.param((), {"a", "b", "c", "bot", "g", "h"}, id="defaults-age-floor"),
    pytest.param(("--older-than", "1h"), {"a", "b", "bot", "g", "h"}, id="older-than"),
    pytest.param(("--older-than", "1h", "--exclude-created-by", "reporting-bot@example.com"),
                 {"a", "b", "g", "h"}, id="older-than+exclude-user"),
    pytest.param(("--report-type", "Summary"), {"b", "g", "h"}, id="report-type"),
    pytest.param(("--report-type", "Summary", "--exclude-report-id", "{g}"), {"b", "h"},
                 id="report-type+exclude-report-id"),
    pytest.param(("--report-id", "{g}"), {"g"}, id="report-id"),
    pytest.param(("--status", "QUERYDATA", "--status", "PROCESSINGDATA"), {"b", "c", "g"},
                 id="statuses"),
    pytest.param(("--created-by", "alice@example.com", "--older-than", "2h"), {"a", "h"},
                 id="created-by+older-than"),
    pytest.param(("--older-than", "STARTED=4h", "--status", "STARTED"), {"bot", "h"},
                 id="older-than-per-status"),
    pytest.param(("--older-than", "STARTED=4h", "--older-than", "QUERYDATA=5h",
                  "--older-than", "PROCESSINGDATA=1m"), {"bot", "h", "g", "c"},
                 id="older-than-every-status"),
    pytest.param(("--older-than", "1s", "--allow-young"),
                 {"a", "b", "c", "young", "bot", "g", "h"}, id="allow-young"),
    pytest.param(("--created-by", "alice@example.com", "--exclude-created-by",
                  "alice@example.com"), set(), id="exclusion-wins"),
    pytest.param(("--report-type", "Detail", "--exclude-report-type", "Detail",
                  "--older-than", "1h"), set(), id="exclude-type-wins"),
]


def _expand(flags: tuple[str, ...], runs) -> list[str]:
    return [f.replace("{g}", runs["g"].report_id) for f in flags]


@pytest.mark.parametrize(("flags", "expected"), COMBOS)
def test_exact_set_cancelled(emu_thread, cli, stage, fast, flags, expected):
    """plan selects exactly the expected runs and sends no DELETE; run then cancels exactly them."""
    emu = emu_thread(runs=0)
    runs = stage(emu)
    want = {runs[name].id for name in expected}

    plan = cli(emu, "plan", *_expand(flags, runs), *fast)
    assert plan.code == 0, plan.stderr
    assert emu.deletes() == []
    assert plan.outcomes() == dict.fromkeys(want, "would_cancel")

    run = cli(emu, "run", *_expand(flags, runs), *fast)
    assert run.code == 0, run.stderr
    assert emu.cancelled_ids() == want
    assert {r.run_id for r in emu.deletes()} == want
    assert run.outcomes() == dict.fromkeys(want, "cancelled")
    assert emu.runs[runs["done"].id].status == "COMPLETED"


def test_reasons_for_unselected_runs(emu_thread, cli, stage, fast):
    """The report says why each listed run was left alone (floor, exclusion, filter)."""
    emu = emu_thread(runs=0)
    runs = stage(emu)
    res = cli(emu, "plan", "--older-than", "1h", "--exclude-created-by",
              "reporting-bot@example.com", *fast)
    assert res.code == 0, res.stderr
    reasons = {r["id"]: r["reason"] for r in res.report["runs"]}
    assert reasons[runs["young"].id] == "too_young"
    assert reasons[runs["c"].id] == "too_young"
    assert reasons[runs["bot"].id] == "excluded_created_by"
    assert reasons[runs["a"].id] == "selected"
    assert runs["done"].id not in reasons  # the listing asks for in-progress statuses only


def test_age_floor_without_allow_young(emu_thread, cli, stage, fast):
    """A typo like --older-than 1s still never cancels a run younger than the 5-minute floor."""
    emu = emu_thread(runs=0)
    runs = stage(emu)
    res = cli(emu, "run", "--older-than", "1s", *fast)
    assert res.code == 0, res.stderr
    assert runs["young"].id not in {r.run_id for r in emu.deletes()}
    assert emu.runs[runs["young"].id].status == "STARTED"
    assert {r["id"]: r["reason"] for r in res.report["runs"]}[runs["young"].id] == "age_floor"


def test_max_cancel_guard_sends_no_delete(emu_thread, cli_subprocess, stage, fast):
    """More matches than --max-cancel: exit 4, nothing cancelled, every match not_attempted."""
    emu = emu_thread(runs=0)
    stage(emu)
    res = cli_subprocess(emu, "run", "--older-than", "1h", "--max-cancel", "3", *fast)
    assert res.code == 4, res.stderr
    assert emu.deletes() == []
    assert emu.cancelled_ids() == set()
    assert set(res.outcomes().values()) == {"not_attempted"}
    assert len(res.outcomes()) == 5
    assert "--max-cancel 5" in res.stderr


def test_exclusions_ignore_letter_case_and_a_typo_is_a_warning(emu_thread, cli, stage, fast):
    """--exclude-created-by REPORTING-BOT@example.com protects the bot's runs, and an exclusion
    that matched no listed run is a warning in the report and on the console."""
    emu = emu_thread(runs=0)
    runs = stage(emu)
    res = cli(emu, "run", "--older-than", "1h", "--exclude-created-by",
              "REPORTING-BOT@Example.com", "--exclude-report-type", "summary",
              "--exclude-created-by", "ceo@exmaple.com", *fast)
    assert res.code == 0, res.stderr
    assert runs["bot"].id not in emu.cancelled_ids()
    assert emu.cancelled_ids() == {runs["a"].id}  # b, g, h are Summary; bot is excluded
    warnings = res.report["warnings"]
    assert warnings == ["exclusion --exclude-created-by 'ceo@exmaple.com' matched no listed "
                        "run (a typo would protect nothing)"]
    assert "ceo@exmaple.com" in res.stderr


def test_an_exclusion_fails_closed_when_the_owner_is_unknown(emu_thread, cli):
    """A listing item without an owner (Zuora documents none on a run): the run that
    --exclude-created-by protects is never cancelled, the report says why, and a warning
    counts it; a run of a known other owner still goes."""
    from worker.emulator.config import REMOVE

    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200, run_id="ceo-run", created_by="ceo@example.com")
    emu.add_run(status="STARTED", age_s=7200, run_id="other", created_by="bob@example.com")
    emu.config.item_patch = {"ceo-run": {"createdByUserProfile": REMOVE}}
    res = cli(emu, "run", "--older-than", "1h", "--exclude-created-by", "ceo@example.com",
              "--rate", "1000")
    assert res.code == 0, res.stderr
    assert set(emu.deletes_received()) == {"other"}
    reasons = {r["id"]: r["reason"] for r in res.report["runs"]}
    assert reasons["ceo-run"] == "unknown_owner"
    assert len(res.report["warnings"]) == 1  # not also "matched no listed run": it may have
    assert res.report["warnings"][0].startswith(
        "1 run(s) not selected: a filter or exclusion names the owner")
