"""Correlated logs: every JSON line of a job carries its job_id (the report's), target, mode and
version; the summary line's level follows the exit code."""

from __future__ import annotations

import json

import pytest

from worker import __version__


def _lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("command", ["plan", "run"])
def test_every_line_carries_the_reports_job_id(emu_thread, cli_subprocess, command):
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli_subprocess(emu, command, "--older-than", "1h", "--log-format", "json")
    assert res.code == 0, res.stderr
    assert res.report is not None
    lines = _lines(res.stderr)
    assert len(lines) >= 3
    for line in lines:
        assert line["job_id"] == res.report["job_id"], line
        assert line["target"] == emu.base_url
        assert line["mode"] == command
        assert line["version"] == __version__
    assert __version__ != "0+unknown"  # the installed package's metadata


@pytest.mark.parametrize(("args", "code", "level"), [
    (("plan", "--older-than", "1h"), 0, "info"),
    (("run", "--older-than", "1h", "--max-cancel", "0"), 4, "warning"),
    (("plan", "--older-than", "1h", "--list-items-field", "nope"), 6, "error"),
])
def test_summary_level_follows_the_exit_code(emu_thread, cli_subprocess, args, code, level):
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    res = cli_subprocess(emu, *args, "--log-format", "json")
    assert res.code == code, res.stderr
    summary = [line for line in _lines(res.stderr) if line["event"] == "job.summary"]
    assert len(summary) == 1
    assert summary[0]["level"] == level
