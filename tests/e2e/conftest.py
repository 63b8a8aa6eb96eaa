"""End-to-end fixtures: a staged population, emulator-side hooks, and a signal-able CLI process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmuRun
from worker.emulator import app as emulator_app

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0

# name -> add_run kwargs. Ages are relative to the emulator clock; "young" is under the floor.
STAGE: dict[str, dict[str, Any]] = {
    "a": {"status": "STARTED", "age_s": 3 * HOUR, "report_type": "Detail",
          "created_by": "alice@example.com"},
    "b": {"status": "QUERYDATA", "age_s": 3 * HOUR, "report_type": "Summary",
          "created_by": "bob@example.com"},
    "c": {"status": "PROCESSINGDATA", "age_s": 0.5 * HOUR, "report_type": "Detail",
          "created_by": "alice@example.com"},
    "young": {"status": "STARTED", "age_s": 120, "report_type": "Detail",
              "created_by": "alice@example.com"},
    "bot": {"status": "STARTED", "age_s": 5 * HOUR, "report_type": "Detail",
            "created_by": "reporting-bot@example.com"},
    "done": {"status": "COMPLETED", "age_s": 5 * HOUR, "report_type": "Detail",
             "created_by": "alice@example.com"},
    "g": {"status": "QUERYDATA", "age_s": 10 * HOUR, "report_type": "Summary",
          "created_by": "carol@example.com"},
    "h": {"status": "STARTED", "age_s": 24 * HOUR, "report_type": "Summary",
          "created_by": "alice@example.com"},
}


@pytest.fixture
def fast() -> tuple[str, ...]:
    """Pacing flags that keep end-to-end runs quick."""
    return ("--rate", "1000", "--concurrency", "16")


@pytest.fixture
def stage() -> Callable[[Emulator], dict[str, EmuRun]]:
    """Add the named runs of ``STAGE`` to an emulator; returns name -> run."""

    def add(emu: Emulator) -> dict[str, EmuRun]:
        emu.clear_runs()
        return {name: emu.add_run(**spec) for name, spec in STAGE.items()}

    return add


@pytest.fixture
def bulk() -> Callable[..., list[str]]:
    """Add ``n`` old in-progress runs (``prefix``-numbered ids) to an emulator; returns the ids."""

    def add(emu: Emulator, n: int, prefix: str = "run") -> list[str]:
        return [emu.add_run(run_id=f"{prefix}{i:04d}", age_s=2 * HOUR).id for i in range(n)]

    return add


@pytest.fixture
def after_first_list(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], None]], None]:
    """Stage a concurrent change on the server: run ``action`` right after the first listing.

    This stands for another user acting between the job's listing and its cancels (cancelling a
    run in the UI, a run being purged), which no emulator knob can time exactly.
    """

    def install(action: Callable[[], None]) -> None:
        original = emulator_app.list_runs
        done: list[bool] = []

        def list_then_act(*args: Any, **kwargs: Any) -> Any:
            reply = original(*args, **kwargs)
            if not done:
                done.append(True)
                action()
            return reply

        monkeypatch.setattr(emulator_app, "list_runs", list_then_act)

    return install


@dataclass
class CliProcess:
    """A ``python -m worker`` process started in the background."""

    proc: subprocess.Popen[str]
    report_file: Path

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


@pytest.fixture
def spawn_cli(tmp_path: Path) -> Iterator[Callable[..., CliProcess]]:
    """Start ``python -m worker ARGS`` against ``emu`` without waiting (to send it signals)."""
    started: list[subprocess.Popen[str]] = []

    def spawn(emu: Emulator, *args: str) -> CliProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA_")}
        env.update({"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET})
        report = tmp_path / "spawned-report.json"
        argv = [sys.executable, "-m", "worker", *args, "--base-url", emu.base_url,
                "--report-file", str(report), "--lock-file", str(tmp_path / "spawned.lock")]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT)
        started.append(proc)
        return CliProcess(proc, report)

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """Poll ``predicate`` until true (or fail after ``timeout`` seconds)."""

    def wait(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what or predicate}")
            time.sleep(0.01)

    return wait
