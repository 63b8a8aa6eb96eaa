"""Fixtures for the worker tests: staged populations, expected sets, and run_job settings."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from worker.config import Settings, load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmuRun
from worker.job import JobDeps, run_job
from worker.models import JobResult
from worker.retry import RetryPolicy

IN_PROGRESS = ("STARTED", "QUERYDATA", "PROCESSINGDATA")
FAST = ("--rate", "1000", "--concurrency", "16")
OAUTH = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}


@dataclass(frozen=True)
class Staged:
    """What the tests need to know about the staged population to predict the selection."""

    emu: Emulator

    def runs(self) -> list[EmuRun]:
        return list(self.emu.runs.values())

    def expected(self, predicate: Callable[[EmuRun, float], bool],
                 min_age: float = 300.0) -> set[str]:
        """Ids of in-progress runs at least ``min_age`` old for which ``predicate(run, age)``."""
        now = time.time()
        return {r.id for r in self.runs()
                if r.status in IN_PROGRESS and now - r.started_on >= min_age
                and predicate(r, now - r.started_on)}


def stage_population(emu: Emulator) -> Staged:
    """A grid of runs: 4 statuses x 2 types x 3 owners x 4 ages, report ids rep-a/b/c.

    Ages 60 s (under the floor), 10 min, 2 h and 2 d; COMPLETED runs are never listed.
    """
    statuses = (*IN_PROGRESS, "COMPLETED")
    types = ("Detail", "Summary")
    owners = ("alice@example.com", "bob@example.com", "carol@example.com")
    ages = (60.0, 600.0, 7200.0, 2 * 86400.0)
    grid = itertools.product(statuses, types, owners, ages)
    for index, (status, rtype, owner, age) in enumerate(grid):
        run = emu.add_run(status=status, age_s=age, report_type=rtype, created_by=owner,
                          run_id=f"run-{index:03d}")
        run.report_id = f"rep-{'abc'[index % 3]}"
    return Staged(emu)


@pytest.fixture
def staged(emu_thread: Callable[..., Emulator]) -> Callable[..., Staged]:
    """Factory: an emulator thread (runs=0 plus the grid) with the given config."""

    def make(**config: Any) -> Staged:
        return stage_population(emu_thread(runs=0, **config))

    return make


@pytest.fixture
def job_settings() -> Callable[..., Settings]:
    """Settings for ``run_job`` against ``emu``: ``job_settings(emu, "run", {key: value})``."""

    def make(emu: Emulator, command: str = "run", flags: dict[str, Any] | None = None,
             env: dict[str, str] | None = None) -> Settings:
        values = {"target.base_url": emu.base_url, "pacing.rate": "1000",
                  "pacing.concurrency": "8", **(flags or {})}
        return load_settings(command, values, env if env is not None else OAUTH)

    return make


@pytest.fixture
def job() -> Callable[..., Any]:
    """``await job(settings, on_selected=..., attempts=6)``: run_job with zero-wait retries."""

    async def run(settings: Settings, *, on_selected: Callable[[int], None] | None = None,
                  attempts: int = 6) -> JobResult:
        deps = JobDeps(policy=RetryPolicy(max_attempts=attempts, base=0, cap=0),
                       on_selected=on_selected)
        return await run_job(settings, deps)

    return run
