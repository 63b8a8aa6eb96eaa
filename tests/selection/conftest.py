"""Selection fixtures: fast pacing flags, config files, and the CLI as a subprocess fed stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator

ROOT = Path(__file__).resolve().parents[2]
MIN = 60.0
HOUR = 3600.0


@pytest.fixture
def fast() -> tuple[str, ...]:
    """Pacing flags that keep runs against the emulator quick."""
    return ("--rate", "1000", "--concurrency", "16")


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], str]:
    """Write ``text`` to ``tmp_path/name``; returns the path as a string."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def reasons() -> Callable[[dict[str, Any]], dict[str, tuple[bool, str, str | None]]]:
    """Map a report to {run id: (selected, reason, rule)}."""

    def read(report: dict[str, Any]) -> dict[str, tuple[bool, str, str | None]]:
        return {r["id"]: (r["selected"], r["reason"], r["rule"]) for r in report["runs"]}

    return read


@pytest.fixture
def cli_stdin(tmp_path: Path) -> Callable[..., tuple[int, str, str, dict[str, Any] | None]]:
    """Run ``python -m worker ARGS`` against ``emu`` with ``stdin`` piped in."""

    def run(emu: Emulator, stdin: str, *args: str) -> tuple[int, str, str, dict[str, Any] | None]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA_")}
        env.update({"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET})
        report = tmp_path / "stdin-report.json"
        argv = [sys.executable, "-m", "worker", *args, "--base-url", emu.base_url,
                "--report-file", str(report), "--lock-file", str(tmp_path / "stdin.lock")]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=60, check=False)
        doc = json.loads(report.read_text()) if report.exists() else None
        return proc.returncode, proc.stdout, proc.stderr, doc

    return run
