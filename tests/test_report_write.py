"""The report file is written atomically: a failure mid-write leaves the old file whole."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import worker.files as report_mod  # write_atomic, which the report is written with
from worker.report import write_report

OLD = {"schema_version": 1, "exit_code": 0, "runs": [{"id": "old"}]}
NEW = {"schema_version": 1, "exit_code": 0, "runs": [{"id": f"new-{i}"} for i in range(500)]}


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


class _HalfWriter:
    """A file object that writes half of what it is given, then fails (a crash or full disk)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def write(self, text: str) -> int:
        self._handle.write(text[: len(text) // 2])
        self._handle.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@pytest.mark.parametrize("failure", ["write", "fsync", "rename"])
def test_failure_mid_write_keeps_the_old_report(tmp_path, monkeypatch, failure):
    """A write, fsync or rename that fails leaves the previous report intact and no temp file."""
    path = tmp_path / "report.json"
    write_report(str(path), OLD)
    before = path.read_bytes()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    if failure == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(report_mod.os, "fdopen",
                            lambda *a, **k: _HalfWriter(real_fdopen(*a, **k)))
    elif failure == "fsync":
        monkeypatch.setattr(report_mod.os, "fsync", boom)
    else:
        monkeypatch.setattr(report_mod.os, "replace", boom)
    with pytest.raises(OSError, match=r"No space left|Input/output"):
        write_report(str(path), NEW)
    assert path.read_bytes() == before
    assert json.loads(before) == OLD
    assert _leftovers(tmp_path, "report.json") == []


def test_new_report_replaces_the_old_one_whole(tmp_path):
    """A successful write replaces the file whole and leaves no temp file behind."""
    path = tmp_path / "report.json"
    write_report(str(path), OLD)
    write_report(str(path), NEW)
    assert json.loads(path.read_text()) == NEW
    assert _leftovers(tmp_path, "report.json") == []


def test_cli_reports_a_failed_report_write(emu_thread, cli, tmp_path, monkeypatch):
    """When the report cannot be written the job says so, exits non-zero and keeps the old file."""
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    path = tmp_path / "kept.json"
    path.write_text(json.dumps(OLD))

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_mod.os, "replace", boom)
    res = cli(emu, "run", "--older-than", "1h", "--report-file", str(path))
    assert res.code == 1
    assert "could not write the report" in res.stderr
    assert res.report == OLD
    assert len(emu.cancelled_ids()) == 1


def test_a_failed_report_write_shows_one_exit_code_everywhere(emu_thread, cli, tmp_path,
                                                              monkeypatch, receiver):
    """A job that went well but could not write its report exits 1, and stdout's JSON, the
    webhook, the metrics and the log summary all say 1 with the same reason (they said 0)."""
    hook = receiver()
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    path, metrics = tmp_path / "kept.json", tmp_path / "reaper.prom"
    path.write_text(json.dumps(OLD))
    replace = os.replace

    def full_disk(src: Any, dst: Any, **kwargs: Any) -> None:  # only the report's rename fails
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        replace(src, dst, **kwargs)

    monkeypatch.setattr(report_mod.os, "replace", full_disk)
    res = cli(emu, "run", "--older-than", "1h", "--report-file", str(path), "--output", "json",
              "--notify-webhook", f"{hook.base_url}/hook", "--metrics-file", str(metrics))
    reason = "the report file could not be written"
    assert res.code == 1
    assert res.report == OLD  # the previous report is left whole
    printed = res.summary
    assert (printed["exit_code"], printed["exit_reason"]) == (1, reason)
    sent = json.loads(hook.requests[0].body)
    assert (sent["exit_code"], sent["exit_reason"]) == (1, reason)
    assert re.search(r"^zuora_reaper_last_run_exit_code\{[^}]*\} 1\.0$", metrics.read_text(), re.M)
    summary = [json.loads(line) for line in res.stderr.splitlines()
               if line.startswith("{") and '"job.summary"' in line]
    assert [(s["exit_code"], s["reason"]) for s in summary] == [(1, reason)]
    assert f"exit 1: {reason}" in res.stderr


def test_a_job_that_listed_nothing_still_replaces_the_last_report(emu_thread, cli, tmp_path):
    """A job stopped before it listed anything (here: credentials refused) writes its own
    report; the previous job's report (exit 0) must not stand for it."""
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    path = tmp_path / "last.json"
    ok = cli(emu, "plan", "--older-than", "1h", "--report-file", str(path))
    assert ok.code == 0
    refused = cli(emu, "plan", "--older-than", "1h", "--report-file", str(path),
                  env={"ZUORA_CLIENT_ID": "someone", "ZUORA_CLIENT_SECRET": "wrong-secret"})
    assert refused.code == 3
    assert refused.report is not None
    assert refused.report["exit_code"] == 3
    assert refused.report["counts"]["listed"] == 0
