"""The report file: schema_version 1 with every field the issue lists, also on failure exits."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.models import JobResult, Outcome, ReportRun, RunRecord
from worker.report import STDOUT_LINE_CAP, build_header, stdout_lines

ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}

FAST = ("--rate", "1000", "--concurrency", "16")
RUN_FIELDS = {"id", "report_id", "report_type", "status", "started_on", "created_by",
              "selected", "reason", "outcome", "attempts", "error"}


def _is_iso_utc(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text.replace("Z", "+00:00")) is not None


def test_report_schema_after_run(emu_thread, cli):
    """A run report has every documented field, counts per outcome, and a run per listed run."""
    emu = emu_thread(runs=0, poison_ids={"bad"}, entity_id="ent-1")
    emu.add_run(run_id="ok", report_type="Summary", created_by="bob@example.com", age_s=7200)
    emu.add_run(run_id="bad")
    emu.add_run(run_id="young", age_s=30)
    emu.add_run(run_id="other", report_type="Detail", created_by="eve@example.com")
    env = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET,
           "ZUORA_ENTITY_ID": "ent-1"}
    res = cli(emu, "run", *FAST, "--max-attempts", "1", "--exclude-created-by",
              "eve@example.com", env=env)
    assert res.code == 1
    doc = res.report
    assert doc["schema_version"] == 1
    assert doc["mode"] == "run"
    assert _is_iso_utc(doc["started_at"])
    assert _is_iso_utc(doc["finished_at"])
    assert doc["started_at"] <= doc["finished_at"]
    principal = "sha256:" + hashlib.sha256(DEMO_CLIENT_ID.encode()).hexdigest()[:12]
    target = doc["target"]
    assert re.fullmatch(r"[0-9a-f]{16}", target.pop("id"))
    assert target == {"base_url": emu.base_url, "environment": None, "auth": "oauth",
                      "principal": principal, "entity_id": "ent-1"}
    text = json.dumps(doc)
    assert DEMO_CLIENT_SECRET not in text
    assert DEMO_CLIENT_ID not in text
    assert doc["filters"]["statuses"] == ["STARTED", "QUERYDATA", "PROCESSINGDATA"]
    assert doc["filters"]["exclude"]["created_by"] == ["eve@example.com"]
    assert doc["filters"]["min_age_s"] == 300.0
    assert doc["filters"]["max_cancel"] == 100
    counts = doc["counts"]
    assert {"listed", "selected", *(o.value for o in Outcome)} <= set(counts)
    assert counts["listed"] == 4
    assert counts["selected"] == 2
    assert counts["cancelled"] == 1
    assert counts["unknown"] == 1  # the poison run
    assert counts["failed"] == counts["still_running"] == 0
    assert counts["would_cancel"] == counts["not_found"] == counts["not_attempted"] == 0
    assert "resent" not in doc["requests"]  # the builtin engine and its count are gone
    runs = {r["id"]: r for r in doc["runs"]}
    assert set(runs) == {"ok", "bad", "young", "other"}
    for entry in runs.values():
        assert set(entry) >= RUN_FIELDS
        assert _is_iso_utc(entry["started_on"])
    ok = runs["ok"]
    assert (ok["report_id"], ok["report_type"], ok["status"], ok["created_by"]) == (
        emu.runs["ok"].report_id, "Summary", "STARTED", "bob@example.com")
    assert (ok["selected"], ok["reason"], ok["outcome"], ok["attempts"], ok["error"]) == (
        True, "selected", "cancelled", 1, None)
    assert runs["bad"]["outcome"] == "unknown"
    assert runs["bad"]["error"]
    assert (runs["young"]["selected"], runs["young"]["reason"], runs["young"]["outcome"]) == (
        False, "age_floor", None)
    assert runs["other"]["reason"] == "excluded_created_by"
    assert runs["other"]["outcome"] is None


def test_report_written_on_guard_failure(emu_thread, cli):
    """A refused job (exit 4) still writes its report, since runs were listed."""
    emu = emu_thread(runs=0)
    for i in range(3):
        emu.add_run(run_id=f"r{i}")
    res = cli(emu, "run", *FAST, "--max-cancel", "1")
    assert res.code == 4
    assert res.report is not None
    assert res.report["counts"]["not_attempted"] == 3
    assert res.report["counts"]["selected"] == 3


def test_report_filters_reflect_flags(emu_thread, cli):
    """The filters section holds the effective filters."""
    emu = emu_thread(runs=0)
    res = cli(emu, "plan", "--older-than", "2h", "--status", "STARTED", "--report-type",
              "Detail", "--created-by", "a@example.com", "--report-id", "rep-1",
              "--exclude-report-type", "Summary", "--exclude-report-id", "rep-2",
              "--allow-young", "--max-cancel", "7")
    assert res.code == 0, res.stderr
    f = res.report["filters"]
    assert f["older_than_s"] == 7200.0
    assert f["statuses"] == ["STARTED"]
    assert f["report_types"] == ["Detail"]
    assert f["created_by"] == ["a@example.com"]
    assert f["report_ids"] == ["rep-1"]
    assert f["exclude"] == {"report_types": ["Summary"], "created_by": [],
                            "report_ids": ["rep-2"]}
    assert f["min_age_s"] == 0.0
    assert f["max_cancel"] == 7
    assert res.report["mode"] == "plan"


def test_unparseable_runs_are_reported_never_cancelled(emu_thread, cli):
    """A run with an unreadable id or startedOn is listed as unparseable and never sent."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="good")
    broken = emu.add_run(run_id="broken-time")
    broken.started_on = 1.0  # 1970: not a plausible startedOn
    emu.add_run(run_id="")  # no id at all
    res = cli(emu, "run", *FAST, "--allow-young", "--older-than", "1s")
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"good"}
    assert {r.run_id for r in emu.deletes()} == {"good"}
    reasons = sorted(r["reason"] for r in res.report["runs"])
    assert reasons == ["selected", "unparseable", "unparseable"]
    assert res.report["counts"]["unparseable"] == 2
    assert all(r["outcome"] is None for r in res.report["runs"] if r["reason"] == "unparseable")


def test_json_output_is_the_reports_header_then_its_selected_runs(emu_thread, cli):
    """--output json: the report's header as the summary line, then the selected runs."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1", age_s=7200)
    emu.add_run(run_id="young", age_s=10)
    res = cli(emu, "plan", "--output", "json")
    assert res.code == 0, res.stderr
    summary, *runs = res.json_lines()
    assert summary["schema_version"] == 1
    header = {k: v for k, v in res.report.items() if k != "runs"}
    assert {k: v for k, v in summary.items() if k not in ("type", "selection", "filters")} == {
        k: v for k, v in header.items() if k not in ("selection", "filters")}
    assert summary["filters"]["exclude"] == {"report_types": 0, "created_by": 0,
                                             "report_ids": 0}  # lists as counts
    assert [r["id"] for r in runs] == ["r1"]


OWNER_EMAILS = st.from_regex(r"[a-z]{1,12}\.[a-z]{1,12}@[a-z]{2,10}\.example", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(owners=st.lists(OWNER_EMAILS, min_size=1, max_size=40, unique=True),
       report_ids=st.integers(0, 4000), warnings=st.integers(0, 30),
       reason_len=st.integers(0, 200_000))
def test_every_stdout_line_is_short_and_names_no_owner(owners, report_ids, warnings,
                                                       reason_len):
    """--output json, whatever the selection and the warnings: no line passes 64 KiB, and no
    owner named by the selection (or any address) is on stdout; the report file keeps all."""
    settings = load_settings("run", {
        "target.base_url": "https://rest.zuora.com", "filters.older_than": "1h",
        "exclude.created_by": ",".join(owners),
        "exclude.report_ids": ",".join(f"{i:032x}" for i in range(report_ids))}, ENV)
    result = JobResult(mode="run", started_at=datetime.now(UTC))
    result.warnings += [f"exclusion --exclude-created-by {owners[i % len(owners)]!r} matched no "
                        "listed run" + " (padding)" * 200 for i in range(warnings)]
    result.records["r1"] = RunRecord(ReportRun("r1", "rep", "Detail", "STARTED",
                                               datetime.now(UTC), None, owners[0]),
                                     "r1", 1, True, "selected")
    header = build_header(settings, result, 2, "ConfigError: x: " + "y" * reason_len)
    lines = list(stdout_lines(header, result))
    assert all(len(line.encode()) <= STDOUT_LINE_CAP + 1 for line in lines)
    text = "".join(lines)
    assert "@" not in text
    assert json.loads(lines[0])["filters"]["exclude"]["report_ids"] == report_ids
    assert [json.loads(line)["id"] for line in lines[1:]] == ["r1"]
