"""Idle selection (with and without updatedOn), [[rules]] named in the report, exclusions win."""

from __future__ import annotations

MIN, HOUR = 60.0, 3600.0

RULES = """
[[rules]]
name = "stuck-start"
statuses = ["STARTED"]
older_than = "20m"

[[rules]]
name = "long-processing"
statuses = ["PROCESSINGDATA"]
older_than = "6h"

[[rules]]
name = "bob-anything"
created_by = ["bob@example.com"]
older_than = "10m"

[[rules]]
name = "everything"
older_than = "0s"
report_types = ["Detail", "Summary"]

[exclude]
report_types = ["Adhoc"]
created_by = ["carol@example.com"]
"""


def test_idle_selects_by_updated_on(emu_thread, cli, fast, reasons):
    """--idle-for selects old runs whose updatedOn is old too; a recently updated one is kept."""
    emu = emu_thread(runs=0)
    idle = emu.add_run(age_s=3 * HOUR, updated_age_s=2 * HOUR).id
    busy = emu.add_run(age_s=3 * HOUR, updated_age_s=10 * MIN).id
    res = cli(emu, "run", "--idle-for", "1h", *fast)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == {idle}
    got = reasons(res.report)
    assert got[idle][:2] == (True, "selected")
    assert got[busy][:2] == (False, "not_idle")
    lists = [r for r in emu.records if r.kind == "list"]
    assert all("updatedOn" in r.body["columns"] for r in lists)


def test_idle_without_updated_on_selects_nothing(emu_thread, cli, fast, reasons):
    """A listing without updatedOn: --idle-for selects nothing and each run says no_updated_on."""
    emu = emu_thread(runs=0, include_updated_on=False)
    ids = [emu.add_run(age_s=3 * HOUR, updated_age_s=2 * HOUR).id for _ in range(3)]
    res = cli(emu, "run", "--idle-for", "1h", *fast)
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    assert {i: v[:2] for i, v in reasons(res.report).items()} == \
        dict.fromkeys(ids, (False, "no_updated_on"))
    assert all(r["updated_on"] is None for r in res.report["runs"])


def test_idle_in_a_rule_without_updated_on_says_why(emu_thread, cli, fast, reasons, write_file):
    """When every rule misses for lack of updatedOn, the report says no_updated_on, not no_rule."""
    emu = emu_thread(runs=0, include_updated_on=False)
    run = emu.add_run(age_s=3 * HOUR).id
    config = write_file("r.toml", '[[rules]]\nname = "idle"\nidle_for = "1h"\n')
    res = cli(emu, "plan", "--config", config, *fast)
    assert res.code == 0, res.stderr
    assert reasons(res.report)[run] == (False, "no_updated_on", None)


def test_rules_name_the_match(emu_thread, cli, fast, reasons, write_file):
    """Each selected run names the first rule it matched; a run no rule matches says why."""
    emu = emu_thread(runs=0)
    config = write_file("rules.toml", RULES.replace(
        'name = "everything"\nolder_than = "0s"\nreport_types = ["Detail", "Summary"]\n',
        'name = "everything"\nolder_than = "12h"\n'))
    runs = {
        "start": emu.add_run(status="STARTED", age_s=30 * MIN),
        "proc": emu.add_run(status="PROCESSINGDATA", age_s=7 * HOUR),
        "proc_young": emu.add_run(status="PROCESSINGDATA", age_s=2 * HOUR),
        "bob": emu.add_run(status="QUERYDATA", age_s=HOUR, created_by="bob@example.com"),
        "old_q": emu.add_run(status="QUERYDATA", age_s=13 * HOUR),
    }
    res = cli(emu, "run", "--config", config, *fast)
    assert res.code == 0, res.stderr
    got = reasons(res.report)
    assert got[runs["start"].id] == (True, "selected", "stuck-start")
    assert got[runs["proc"].id] == (True, "selected", "long-processing")
    assert got[runs["bob"].id] == (True, "selected", "bob-anything")
    assert got[runs["old_q"].id] == (True, "selected", "everything")
    assert got[runs["proc_young"].id] == (False, "no_rule", None)
    assert {r.run_id for r in emu.deletes()} == \
        {runs[n].id for n in ("start", "proc", "bob", "old_q")}


def test_exclusions_beat_every_rule(emu_thread, cli, fast, reasons, write_file):
    """Runs every rule matches are still never cancelled when an exclusion names them."""
    emu = emu_thread(runs=0)
    config = write_file("rules.toml", RULES)
    keep = emu.add_run(status="STARTED", age_s=8 * HOUR, created_by="bob@example.com")
    by_type = emu.add_run(status="STARTED", age_s=8 * HOUR, created_by="bob@example.com",
                          report_type="Adhoc")
    by_user = emu.add_run(status="STARTED", age_s=8 * HOUR, created_by="carol@example.com")
    by_report = emu.add_run(status="STARTED", age_s=8 * HOUR, created_by="bob@example.com")
    by_run_id = emu.add_run(status="PROCESSINGDATA", age_s=8 * HOUR)
    res = cli(emu, "run", "--config", config, "--exclude-report-id", by_report.report_id,
              "--exclude-report-id", by_run_id.id, *fast)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == {keep.id}
    got = reasons(res.report)
    assert got[keep.id] == (True, "selected", "stuck-start")
    assert got[by_type.id][:2] == (False, "excluded_report_type")
    assert got[by_user.id][:2] == (False, "excluded_created_by")
    assert got[by_report.id][:2] == (False, "excluded_report_id")
    assert got[by_run_id.id][:2] == (False, "excluded_report_id")
