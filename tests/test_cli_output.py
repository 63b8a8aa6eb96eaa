"""Console output of plan: the table and summary line, and --output json on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from local import clean_env

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def test_plan_table_lists_what_would_be_cancelled(emu_thread, cli):
    """The plan table shows id, type, status, age and owner of each selected run, then a summary."""
    emu = emu_thread(runs=0)
    old = emu.add_run(status="QUERYDATA", age_s=7200, report_type="Summary",
                      created_by="carol@example.com")
    young = emu.add_run(age_s=60)
    res = cli(emu, "plan", "--older-than", "1h")
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "Plan: 1 run(s) to cancel (of 2 listed)"  # the summary comes first
    table = lines.index(next(line for line in lines if line.startswith("RUN ID")))
    assert lines[table].split() == ["RUN", "ID", "TYPE", "STATUS", "AGE", "OWNER", "RULE",
                                    "OUTCOME"]
    row = lines[table + 1].split()
    assert row[:5] == [old.id, "Summary", "QUERYDATA", "2h", "carol@example.com"]
    assert row[-1] == "would_cancel"
    assert young.id not in res.stdout
    assert lines[-1].startswith("plan: listed 2, selected 1, would_cancel 1")


def test_output_json_prints_the_summary_then_each_selected_run(emu_thread, cli):
    """--output json: JSON Lines, the summary first (the report's counts and exit code), then
    one line per selected run with its outcome; listed runs left alone are in the report."""
    emu = emu_thread(runs=0)
    old = emu.add_run(age_s=7200)
    emu.add_run(age_s=10)
    res = cli(emu, "plan", "--older-than", "1h", "--output", "json")
    assert res.code == 0, res.stderr
    summary, *runs = res.json_lines()
    assert summary["type"] == "summary"
    assert summary["counts"] == res.report["counts"]
    assert summary["counts"]["would_cancel"] == 1
    assert [(r["type"], r["id"], r["outcome"]) for r in runs] == [
        ("run", old.id, "would_cancel")]


def test_output_json_lines_are_short_and_carry_no_owner(emu_thread, cli):
    """3,000 runs (1.1 MB on one line before): no stdout line passes 64 KiB, and no owner's
    address is on any (log stores keep them); the report file has them all."""
    emu = emu_thread(runs=0)
    for i in range(3000):
        emu.add_run(status="STARTED", age_s=7200, created_by=f"owner{i}@example.com")
    res = cli(emu, "plan", "--older-than", "1h", "--output", "json", "--max-cancel", "5000")
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1 + 3000
    assert max(len(line.encode()) for line in lines) <= 65536
    assert "@example.com" not in res.stdout
    assert sum(1 for r in res.report["runs"] if r["created_by"]) == 3000


def test_output_json_carries_the_same_selection_summary(emu_thread, cli):
    """The plan summary's counts are in the JSON report too (stdout and --report-file)."""
    emu = emu_thread(runs=0)
    for status, rtype in (("STARTED", "Detail"), ("STARTED", "Summary"), ("QUERYDATA", "Detail")):
        emu.add_run(status=status, age_s=7200, report_type=rtype, created_by="carol@example.com")
    res = cli(emu, "plan", "--older-than", "1h", "--output", "json")
    assert res.code == 0, res.stderr
    selection = res.summary["selection"]
    assert selection["selected"] == 3
    assert selection["by_status"] == {"STARTED": 2, "QUERYDATA": 1}
    assert selection["by_report_type"] == {"Detail": 2, "Summary": 1}
    assert "by_owner" not in selection  # no owner's address on stdout
    assert res.report["selection"]["by_owner"] == {"carol@example.com": 3}
    assert selection["oldest_age_s"] >= 7200
    assert {**res.report["selection"], "by_owner": None} == {**selection, "by_owner": None}


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_closed_stdout_still_finishes_the_job(emu_thread, tmp_path, output):
    """'plan | head' (stdout closed before anything is written): no traceback, the report and
    the summary are still written, and the exit code is the job's own (0)."""
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(age_s=7200)
    env = {**clean_env(),
           "ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    report = tmp_path / "report.json"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the job writes a byte
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "worker", "plan", "--base-url", emu.base_url,
             "--older-than", "1h", "--output", output, "--report-file", str(report),
             "--lock-file", str(tmp_path / "lock"), "--log-format", "json"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=60,
            check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"output.stdout_closed"' in proc.stderr
    assert '"job.summary"' in proc.stderr
    assert json.loads(report.read_text())["counts"]["would_cancel"] == 3
