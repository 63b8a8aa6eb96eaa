"""Fixtures for the reliability suite: the CLI as a signallable subprocess, emulator helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Job:
    """A ``python -m worker`` subprocess and where its report goes."""

    proc: subprocess.Popen[str]
    report_path: Path

    def report(self) -> dict[str, Any]:
        data = json.loads(self.report_path.read_text())
        assert isinstance(data, dict)
        return data


@pytest.fixture
def popen_job(tmp_path: Path) -> Iterator[Callable[..., Job]]:
    """Start ``python -m worker ARGS`` against ``emu`` without waiting; killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(emu: Emulator, *args: str, name: str = "job", grace: float | None = None) -> Job:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA_")}
        env.update({"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET})
        report = tmp_path / f"{name}-report.json"
        entry = ["-m", "worker"]
        if grace is not None:  # a shorter grace period, so a test need not wait 5 s
            entry = ["-c", "import sys, worker.runner as r; from worker.cli import main; "
                           f"r.GRACE_SECONDS = {grace}; sys.exit(main(sys.argv[1:]))"]
        argv = [sys.executable, *entry, *args, "--base-url", emu.base_url,
                "--report-file", str(report)]
        if "--lock-file" not in args:
            argv += ["--lock-file", str(tmp_path / f"{name}.lock")]
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return Job(proc, report)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(predicate, timeout=20)``: poll until true, else fail."""
    return wait_for


def track_jobs(emu: Emulator) -> set[str]:
    """The job ids seen in the Zuora-Track-Id headers the emulator received."""
    ids = set()
    for rec in list(emu.records):
        track = rec.headers.get("Zuora-Track-Id")
        if track:
            ids.add(track.rsplit("-", 1)[0])
    return ids


@pytest.fixture
def job_ids_seen() -> Callable[[Emulator], set[str]]:
    """``job_ids_seen(emu)``: distinct job ids found in the track ids sent to ``emu``."""
    return track_jobs
