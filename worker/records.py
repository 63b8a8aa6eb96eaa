"""The per-run record a job keeps: what was listed, the verdict, and the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.models import Outcome, ReportRun


@dataclass(slots=True)
class RunRecord:
    """One listed run. ``outcome`` stays None while the run is not selected."""

    run: ReportRun
    key: str
    pass_no: int
    selected: bool
    reason: str
    rule: str | None = None
    outcome: Outcome | None = None
    attempts: int = 0
    error: str | None = None
    latency_s: float | None = None
    unsure: bool = False  # a DELETE went out without a definitive answer: reconcile it
    reconciled: bool = False  # the outcome was read back with a GET after the cancels

    def age_s(self, now: datetime) -> float | None:
        if self.run.started_on is None:
            return None
        return (now - self.run.started_on).total_seconds()
