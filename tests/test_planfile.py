"""plan --plan-out then run --plan: applied exactly, refused when stale, changed or misdirected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.planfile import content_hash

HOUR = 3600.0
OAUTH_DEMO = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}


def _plan(cli, emu, path, *flags):
    res = cli(emu, "plan", "--older-than", "1h", "--plan-out", str(path), *flags)
    assert res.code == 0, res.stderr
    return json.loads(Path(path).read_text())


def _edit(path, **fields):
    """Stage a plan as it would have been made (e.g. two hours ago): the fields changed and
    the content digest sealed again, as the tool seals a plan it writes."""
    doc = json.loads(Path(path).read_text())
    doc.update(fields)
    doc["sha256"] = content_hash(doc)
    Path(path).write_text(json.dumps(doc))


def test_plan_file_contents(emu_thread, cli, fast, tmp_path):
    """The plan holds the time, the target, the filters and their hash, and the selected runs."""
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=2 * HOUR)
    emu.add_run(age_s=0.5 * HOUR)
    doc = _plan(cli, emu, tmp_path / "p.json", *fast)
    assert doc["schema_version"] == 3
    assert len(doc["sha256"]) == 64
    assert doc["target"]["base_url"] == emu.base_url
    assert len(doc["filters_sha256"]) == 64
    assert doc["filters"]["older_than_s"] == 3600.0
    created = datetime.fromisoformat(doc["created_at"])
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    assert [(r["id"], r["report_id"], r["status"], r["rule"]) for r in doc["runs"]] == \
        [(a.id, a.report_id, "STARTED", None)]
    assert emu.deletes() == []


def test_plan_applied_exactly(emu_thread, cli, fast, tmp_path, reasons):
    """run --plan DELETEs only runs that are in the plan and still eligible; new ones wait."""
    emu = emu_thread(runs=0)
    a, b, c = (emu.add_run(age_s=2 * HOUR) for _ in range(3))
    path = tmp_path / "p.json"
    _plan(cli, emu, path, *fast)
    emu.runs[b.id].status = "COMPLETED"  # finished since the plan was made
    late = emu.add_run(age_s=3 * HOUR)  # eligible now, but not in the plan
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), *fast)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == {a.id, c.id}
    assert reasons(res.report)[late.id][:2] == (False, "not_in_plan")
    assert emu.runs[late.id].status == "STARTED"
    assert emu.runs[b.id].status == "COMPLETED"


def test_plan_still_needs_current_filters(emu_thread, cli, fast, tmp_path, reasons):
    """A planned run that fails the current filters (restarted, now too young) is kept."""
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=2 * HOUR)
    b = emu.add_run(age_s=2 * HOUR)
    path = tmp_path / "p.json"
    _plan(cli, emu, path, *fast)
    emu.add_run(run_id=b.id, age_s=10 * 60)  # same id, restarted: now too young
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), *fast)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == {a.id}
    assert reasons(res.report)[b.id][:2] == (False, "too_young")


def test_stale_plan_refused(emu_thread, cli, fast, tmp_path):
    """A plan older than --plan-max-age exits 4 without sending any request."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=2 * HOUR)
    path = tmp_path / "p.json"
    _plan(cli, emu, path, *fast)
    old = datetime.now(UTC) - timedelta(hours=2)
    _edit(path, created_at=old.isoformat())
    sent = len(emu.records)
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), *fast)
    assert res.code == 4, res.stderr
    assert "--plan-max-age" in res.stderr
    assert len(emu.records) == sent
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), "--plan-max-age", "3h",
              *fast)
    assert res.code == 0, res.stderr
    assert len(emu.deletes()) == 1


def test_plan_with_changed_filters_refused(emu_thread, cli, fast, tmp_path):
    """Different filters (a longer --older-than, a new exclusion) exit 4 naming what changed."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=3 * HOUR)
    path = tmp_path / "p.json"
    _plan(cli, emu, path, *fast)
    sent = len(emu.records)
    res = cli(emu, "run", "--older-than", "2h", "--plan", str(path), *fast)
    assert res.code == 4, res.stderr
    assert "different filters" in res.stderr
    assert "older_than_s" in res.stderr
    res = cli(emu, "run", "--older-than", "1h", "--exclude-created-by", "x@example.com",
              "--plan", str(path), *fast)
    assert res.code == 4, res.stderr
    assert "exclude" in res.stderr
    assert len(emu.records) == sent
    assert emu.deletes() == []


def test_plan_for_another_target_refused(emu_thread, cli, fast, tmp_path):
    """A plan made against one emulator is refused against another: exit 4, nothing sent."""
    first, second = emu_thread(runs=0), emu_thread(runs=0)
    run = first.add_run(age_s=2 * HOUR)
    second.add_run(run_id=run.id, age_s=2 * HOUR)
    path = tmp_path / "p.json"
    _plan(cli, first, path, *fast)
    res = cli(second, "run", "--older-than", "1h", "--plan", str(path), *fast)
    assert res.code == 4, res.stderr
    assert "was made for" in res.stderr
    assert second.records == []


@pytest.mark.parametrize("other", [{"ZUORA_CLIENT_ID": "another-client"},
                                   {"ZUORA_ENTITY_ID": "entity-2"}],
                         ids=["another-client", "another-entity"])
def test_plan_for_another_tenant_on_the_same_host_refused(emu_thread, cli, fast, tmp_path,
                                                          other):
    """Same base URL, another API client or entity: another target. Its plan is refused with
    exit 4 before any request, and the message names both targets by identity."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=2 * HOUR)
    path = tmp_path / "p.json"
    _plan(cli, emu, path, *fast)
    sent = len(emu.records)
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), *fast,
              env={**OAUTH_DEMO, **other})
    assert res.code == 4, res.stderr
    assert "another host, API client or entity" in res.stderr
    assert "sha256:" in res.stderr
    assert DEMO_CLIENT_ID not in res.stderr
    assert len(emu.records) == sent


def test_plan_max_cancel_still_applies(emu_thread, cli, fast, tmp_path):
    """max-cancel is not part of the plan's hash, and it still guards run --plan."""
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(age_s=2 * HOUR)
    path = tmp_path / "p.json"
    _plan(cli, emu, path, "--max-cancel", "10", *fast)
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), "--max-cancel", "2", *fast)
    assert res.code == 4, res.stderr
    assert emu.deletes() == []


def test_unreadable_or_edited_plan_is_config_error(emu_thread, cli, fast, tmp_path):
    """A missing, garbled or hand-edited plan exits 2 before any request."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=2 * HOUR)
    path = tmp_path / "p.json"
    res = cli(emu, "run", "--plan", str(path), *fast)
    assert res.code == 2, res.stderr
    path.write_text("{not json")
    assert cli(emu, "run", "--plan", str(path), *fast).code == 2
    assert emu.records == []
    doc = _plan(cli, emu, path, *fast)
    doc["filters"]["older_than_s"] = 60.0
    path.write_text(json.dumps(doc))
    sent = len(emu.records)
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), *fast)
    assert res.code == 2, res.stderr
    assert "filters_sha256" in res.stderr
    assert len(emu.records) == sent


def test_plan_out_is_for_plan_only(emu_thread, cli, fast, tmp_path):
    """run --plan-out is a usage error: run applies plans, it does not write them."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=2 * HOUR)
    res = cli(emu, "run", "--older-than", "1h", "--plan-out", str(tmp_path / "p.json"), *fast)
    assert res.code == 2, res.stderr
    assert emu.records == []
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("edit", ["add", "remove", "change", "rule"])
def test_any_edit_of_the_run_list_is_refused(emu_thread, cli, fast, tmp_path, edit):
    """The plan's sha256 covers its runs too: an id added, dropped or changed, or a rule
    renamed, is a config error (exit 2) before any request."""
    emu = emu_thread(runs=0)
    for _ in range(2):
        emu.add_run(age_s=2 * HOUR)
    path = tmp_path / "p.json"
    doc = _plan(cli, emu, path, *fast)
    runs = doc["runs"]
    if edit == "add":
        runs.append({**runs[0], "id": "someone-elses-run"})
    elif edit == "remove":
        runs.pop()
    elif edit == "change":
        runs[0]["id"] = "someone-elses-run"
    else:
        runs[0]["rule"] = "renamed"
    path.write_text(json.dumps(doc))
    sent = len(emu.records)
    res = cli(emu, "run", "--older-than", "1h", "--plan", str(path), *fast)
    assert res.code == 2, res.stderr
    assert "edited after it was made" in res.stderr
    assert len(emu.records) == sent


def test_plan_takes_no_plan_even_from_the_environment(emu_thread, cli, fast, tmp_path):
    emu = emu_thread(runs=0)
    res = cli(emu, "plan", "--older-than", "1h", *fast,
              env={**OAUTH_DEMO, "ZUORA_REAPER_PLAN": str(tmp_path / "p.json")})
    assert res.code == 2, res.stderr
    assert "--plan is for 'run'" in res.stderr
    assert emu.records == []
