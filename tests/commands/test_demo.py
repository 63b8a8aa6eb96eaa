"""zuora-reaper demo: the installed script and the module entry, table and JSON, bad options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from local import clean_env

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "zuora-reaper"




def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=clean_env(), cwd=ROOT,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_demo_console_script_prints_table():
    """`zuora-reaper demo` (the installed console script) exits 0 and prints the plan/run table."""
    if not CONSOLE_SCRIPT.exists():
        pytest.skip("the zuora-reaper console script is not installed next to this Python")
    proc = _run([str(CONSOLE_SCRIPT), "demo"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.split() == ["plan", "run", "pass", "1",
                                                             "pass", "2"])
    assert header
    rows = {line.rsplit(None, 4)[0].strip(): line.split()[-4:] for line in lines
            if len(line.split()) >= 5 and line.split()[-1].rstrip("s").replace(".", "").isdigit()}
    assert rows["would_cancel"][0] == rows["selected"][0] != "0"
    assert rows["cancelled"][1] != "0"
    assert rows["failed"] == ["0", "0", "0", "0"]
    assert rows["DELETEs (emulator)"][0] == "0"
    assert rows["exit code"] == ["0", "0", "0", "0"]
    # memory across jobs: the moving runs were not stalled; the stalled ones got a notice on
    # pass 1 (no DELETE) and were cancelled on pass 2
    assert rows["not stalled (moved)"][2] != "0"
    assert rows["noticed"][2] == rows["cancelled"][3] != "0"
    assert rows["DELETEs (emulator)"][2] == "0"
    assert "[FAILED]" not in proc.stdout
    assert "zuora-reaper history" in proc.stdout
    assert "cancelled by ISO week" in proc.stdout
    assert "zuora-reaper plan --environment" in proc.stdout


@pytest.mark.slow
def test_demo_json_module_entry():
    """`python -m worker demo --json --runs 120` reports a clean plan and a successful run."""
    proc = _run([sys.executable, "-m", "worker", "demo", "--json", "--runs", "120",
                 "--seed", "3"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    plan, run = doc["phases"]["plan"], doc["phases"]["run"]
    assert doc["ok"] is True
    assert all(doc["checks"].values())
    assert plan["emulator_deletes"] == 0
    assert plan["would_cancel"] == plan["selected"] > 0
    assert run["cancelled"] + run["already_finished"] == run["selected"]
    assert run["failed"] == run["not_attempted"] == 0
    assert run["exit_code"] == plan["exit_code"] == 0
    assert run["emulator_deletes"] >= run["cancelled"]
    assert doc["history"]["cancelled"] == sum(p["cancelled"] for p in doc["phases"].values())


def test_demo_bad_option_exits_2():
    """An unknown demo option is a usage error (exit 2), not a crash."""
    proc = _run([sys.executable, "-m", "worker", "demo", "--bogus"])
    assert proc.returncode == 2
    assert "usage: zuora-reaper demo" in proc.stderr
