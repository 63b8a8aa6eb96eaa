"""End-to-end fixtures: a staged population, emulator-side hooks, and a signal-able CLI process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from worker.emulator import Emulator, EmuRun

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
def after_first_list() -> Callable[[Emulator, Callable[[], None]], None]:
    """Stage a concurrent change on the server: run ``action`` right after the first listing
    page is answered (the emulator's ``after_list`` setting). This stands for another user
    acting between the job's listing and its cancels (cancelling a run in the UI, a purge)."""

    def install(emu: Emulator, action: Callable[[], None]) -> None:
        emu.config.after_list = lambda answered: action() if answered == 1 else None

    return install
